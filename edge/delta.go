package edge

import (
	"container/list"
	"sync"

	"github.com/centrifugal/fdelta"
)

// Delta compression (delta=fossil): a subscriber that asks for it gets,
// instead of a message's payload, a Fossil delta (fossil-scm.org's
// delta_format) that turns the previous message of the same channel and
// conflation key (Message.Key) into it, when its client holds that
// previous message and the delta is smaller than the payload.
//
// The hub keeps, per channel and only while the node has a delta
// subscriber to it, the previous message of each key (deltaChannel). A
// new message of a key with a previous one carries it as its base; its
// patch is computed once, by the first subscriber that needs it, and its
// encodings are shared by all (Frame.Delta). A session sends the patch
// only when its client holds the base: the last message of the key it
// queued was the base (subscription.out).
const (
	// DeltaResync is how often a key's message carries no base: every
	// DeltaResync-th message of a key is sent in full to every delta
	// subscriber, so that a client that holds a wrong base for whatever
	// reason is put right within that many messages.
	DeltaResync = 50
	// DeltaMaxKeys bounds the keys a channel keeps a previous message of:
	// beyond it the stalest key is forgotten, and its next message is
	// sent in full.
	DeltaMaxKeys = 1024
	// DeltaMaxBytes bounds the payload bytes a channel keeps as bases, in
	// the same way.
	DeltaMaxBytes = 4 << 20
	// DeltaMaxPayload is the largest payload that is sent as a delta: a
	// larger one is always sent in full, which bounds the cost of making a
	// delta (it grows with the base's size).
	DeltaMaxPayload = 64 << 10
)

// frameDelta is a message's base: the previous message of its key, which
// subscribers whose clients hold it may get a patch against instead.
type frameDelta struct {
	base ID
	data []byte // the base's payload, never modified

	once sync.Once
	view *Frame // the frame as a patch; nil when the patch is not smaller
}

// deltaChannel is the previous message of each key of one channel. It is
// safe for concurrent use.
type deltaChannel struct {
	mu sync.Mutex
	// mu guards keys, order and bytes.
	keys  map[string]*list.Element // of *deltaPrev
	order list.List                // of *deltaPrev, least recently updated first
	bytes int                      // the payload bytes kept
}

// deltaPrev is the previous message of one key.
type deltaPrev struct {
	key  string
	id   ID
	data []byte
	n    int // messages of the key since the last one without a base
}

func newDeltaChannel() *deltaChannel {
	return &deltaChannel{keys: make(map[string]*list.Element)}
}

// next records m as the previous message of its key and returns its base,
// or nil when it has none (the key's first message, every DeltaResync-th
// one, one too large, or one not after the previous). The broker hands a
// channel's messages in id order (see Broker), so the base is the message
// right before m in its key; the lock keeps the state whole even if it
// did not.
func (dc *deltaChannel) next(m *Message) *frameDelta {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	e := dc.keys[m.Key]
	if len(m.Data) > DeltaMaxPayload {
		if e != nil {
			dc.dropLocked(e)
		}
		return nil
	}
	if e == nil {
		p := &deltaPrev{key: m.Key, id: m.ID, data: m.Data}
		dc.keys[m.Key] = dc.order.PushBack(p)
		dc.bytes += len(m.Data)
		dc.evictLocked()
		return nil
	}
	p := e.Value.(*deltaPrev)
	var fd *frameDelta
	if p.n++; p.n < DeltaResync && p.id.Less(m.ID) {
		fd = &frameDelta{base: p.id, data: p.data}
	} else {
		p.n = 0
	}
	dc.bytes += len(m.Data) - len(p.data)
	p.id, p.data = m.ID, m.Data
	dc.order.MoveToBack(e)
	dc.evictLocked()
	return fd
}

// evictLocked forgets the stalest keys while the channel keeps too many
// or too many bytes, never the newest one. The caller holds mu.
func (dc *deltaChannel) evictLocked() {
	for dc.order.Len() > 1 && (dc.order.Len() > DeltaMaxKeys || dc.bytes > DeltaMaxBytes) {
		dc.dropLocked(dc.order.Front())
	}
}

// dropLocked forgets a key. The caller holds mu.
func (dc *deltaChannel) dropLocked(e *list.Element) {
	p := dc.order.Remove(e).(*deltaPrev)
	delete(dc.keys, p.key)
	dc.bytes -= len(p.data)
}

// DeltaFrom returns the id of the message that the frame can be sent as
// a patch against (see Delta), and whether there is one.
func (f *Frame) DeltaFrom() (ID, bool) {
	if f.delta == nil {
		return ID{}, false
	}
	return f.delta.base, true
}

// Delta returns the frame as a patch against its base (DeltaFrom): a
// frame of the same message whose Data is a Fossil delta and whose Base
// is the base's id, with encodings of its own. It is made once, by the
// first caller, and shared by every later one. Delta returns nil when
// the frame has no base or the patch is not smaller than the payload.
func (f *Frame) Delta() *Frame {
	fd := f.delta
	if fd == nil {
		return nil
	}
	fd.once.Do(func() {
		patch := fdelta.Create(fd.data, f.Data)
		if len(patch) < len(f.Data) {
			m := f.Message
			m.Data = patch
			fd.view = &Frame{Message: m, base: fd.base}
		}
	})
	return fd.view
}

// Base returns, for a frame that Delta made, the id of the message its
// Data patches, and whether it is such a frame.
func (f *Frame) Base() (ID, bool) {
	return f.base, !f.base.IsZero()
}

// heldKey is the id of the last message of a key that a delta
// subscription queued: the message its client holds for the key.
type heldKey struct {
	key string
	id  ID
}

// maxHeldKeys bounds the keys a delta subscription remembers; the
// messages of the others are sent in full.
const maxHeldKeys = 64

// deltaOn reports whether the subscription gets deltas: the one place
// that decides it (a subscription that conflates gets full messages).
func (sub *subscription) deltaOn() bool { return sub.delta }

// out returns what the subscription sends for message f, which it sends
// next: the shared patch when its client holds f's base, else f itself.
// It notes f as the message its client then holds for f's key.
func (sub *subscription) out(f *Frame) *Frame {
	if !sub.deltaOn() || f.IsPresence() {
		return f
	}
	i := 0
	for i < len(sub.held) && sub.held[i].key != f.Key {
		i++
	}
	held, known := ID{}, i < len(sub.held)
	if known {
		held = sub.held[i].id
		sub.held[i].id = f.ID
	} else {
		if len(sub.held) == maxHeldKeys {
			sub.held = append(sub.held[:0], sub.held[1:]...)
		}
		sub.held = append(sub.held, heldKey{key: f.Key, id: f.ID})
	}
	base, ok := f.DeltaFrom()
	if !ok {
		return f
	}
	// Without a message of the key since the trusted position, the
	// client holds the key's newest message up to it: the base, when the
	// base is at or before it.
	if known && held == base || !known && !sub.trust.IsZero() && !sub.trust.Less(base) {
		if v := f.Delta(); v != nil {
			return v
		}
	}
	return f
}
