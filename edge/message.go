package edge

import "sync"

// Message is one published message.
type Message struct {
	Channel string
	ID      ID
	Event   string // empty means the default type ("message" on SSE)
	Data    []byte // the opaque payload; never modified after publish
	// Key is the message's conflation key, the publish's key= (an
	// instrument, a widget): a conflating subscriber gets the latest
	// message of each key, and deltas are taken between messages of one
	// key. Empty: the channel is the key.
	Key string
}

// Payload limits shared by every layer that checks a message's size.
const (
	// DefaultMaxPayload is the largest payload, in bytes, that a layer
	// accepts when its configuration leaves the limit zero: 64 KiB.
	DefaultMaxPayload = 64 << 10
	// MaxPayloadLimit bounds every configured payload limit: 16 MiB.
	MaxPayloadLimit = 16 << 20
)

// Encoding names one wire format of a message. Each transport builds its
// encoding of a Frame at most once, however many subscribers it has.
type Encoding uint8

// The wire encodings of a message.
const (
	EncodingJSON     Encoding = iota // {"channel","id","event","data"} object (WS, long-poll, multi-channel SSE)
	EncodingSSE                      // SSE event whose data is the payload (one channel per stream)
	EncodingSSEMulti                 // SSE event whose data is the JSON object (several channels per stream)
	EncodingWS                       // prepared WebSocket message
	EncodingWSFrame                  // WebSocket text frame, uncompressed
	numEncodings
)

// Frame is a Message on its way to subscribers. Its encodings are built
// lazily, once per Encoding, and shared by every subscriber; a Frame is
// safe for concurrent use.
//
// A presence frame (NewPresenceFrame) carries a join or leave instead of a
// message: Member is set, Event is EventJoin or EventLeave, and ID is
// zero. It is not in history: a writer gives it no id and moves no cursor
// for it (see IsPresence).
type Frame struct {
	Message
	// Member is the member that joined or left, on a presence frame; nil
	// on a message.
	Member *Member

	enc [numEncodings]struct {
		once sync.Once
		v    any
	}
}

// frameOverhead approximates the bytes a queued frame costs beyond its
// payload (the Frame itself and its encodings' framing).
const frameOverhead = 256

// NewFrame wraps m.
func NewFrame(m Message) *Frame { return &Frame{Message: m} }

// NewPresenceFrame wraps a join or leave of a channel.
func NewPresenceFrame(c PresenceChange) *Frame {
	m := c.Member
	return &Frame{Message: Message{Channel: c.Channel, Event: c.Event}, Member: &m}
}

// IsPresence reports whether f is a presence frame, which carries no
// message id.
func (f *Frame) IsPresence() bool { return f.Member != nil }

// Encoded returns the encoding e of the frame, calling build the first time
// it is asked for and returning the same value afterwards.
func (f *Frame) Encoded(e Encoding, build func(*Message) any) any {
	slot := &f.enc[e]
	slot.once.Do(func() { slot.v = build(&f.Message) })
	return slot.v
}

// Size is what the frame counts against a queue's byte budget.
func (f *Frame) Size() int {
	n := len(f.Data) + len(f.Channel) + len(f.Event) + len(f.Key) + frameOverhead
	if m := f.Member; m != nil {
		n += len(m.Conn) + len(m.Sub) + len(m.Info) + len(m.Node)
	}
	return n
}
