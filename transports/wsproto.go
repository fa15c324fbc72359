package transports

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
)

// The WebSocket operations a client may send, as JSON text frames:
//
//	{"op":"subscribe","channel":"A","since":"<cursor>","presence":true,"conflate":"1s","delta":"fossil","ref":1}
//	{"op":"unsubscribe","channel":"A","ref":2}
//	{"op":"publish","channel":"A","event":"price","data":"…","key":"EURUSD","idempotency_key":"k","ref":3}
//	{"op":"refresh","token":"<JWT>","ref":4}
//	{"op":"ping","ref":5}
//
// refresh replaces the connection's token before it expires. ping is
// answered {"type":"pong"}: a script cannot see WebSocket-level pings, so
// this is how a browser finds out that a silent connection is dead. ref is
// optional (a number, or a string of up to 64 bytes of valid UTF-8) and is
// echoed in the answer; since is optional; publish data is a string, or
// base64 with "encoding":"base64"; a publish's optional idempotency_key
// works as the Idempotency-Key header of POST /v1/publish, and its
// "published" answer then says "replayed":true for a repeat; its optional
// key is the message's conflation key, as key= of POST /v1/publish. A
// subscribe's optional presence (a boolean) says whether the channel's
// joins and leaves are sent (without it, as presence= in the URL says);
// its optional conflate (a duration string, as conflate= in the URL; "0"
// for none) conflates the channel (without it, as conflate= in the URL
// says); its optional
// delta, "fossil", asks for deltas on the channel (without it, as delta=
// in the URL says). Every field but ref, data and presence is a string;
// null counts as absent.
const (
	opSubscribe   = "subscribe"
	opUnsubscribe = "unsubscribe"
	opPublish     = "publish"
	opRefresh     = "refresh"
	opPing        = "ping"
)

// maxRefLen bounds the client's correlation ref.
const maxRefLen = 64

// clientOp is one parsed client operation.
type clientOp struct {
	Op       string
	Ref      json.RawMessage // valid: a number, or a string of valid UTF-8; echoed as is
	Channel  string
	Since    string
	Event    string
	Encoding string
	Token    string
	// IdempotencyKey makes a repeated publish return the first one's id
	// and store nothing (edge.OncePublisher).
	IdempotencyKey string
	// Key is a publish's conflation key (edge.Message.Key).
	Key string
	// Presence says whether a subscribe hears joins and leaves; nil: as
	// the connection's URL says.
	Presence *bool
	// Conflate is a subscribe's conflation window, as conflate= in the
	// URL; "": none.
	Conflate string
	// Delta is a subscribe's "delta": "fossil" asks for deltas; empty: as
	// the connection's URL says.
	Delta string

	since    *edge.ID      // parsed Since
	conflate time.Duration // parsed Conflate
	payload  []byte        // decoded data
}

// rawOp is a client frame with each field kept as raw JSON, so that
// parseOp checks the types itself and its errors name the protocol's
// fields and JSON types, never Go's.
type rawOp struct {
	Op       json.RawMessage `json:"op"`
	Ref      json.RawMessage `json:"ref"`
	Channel  json.RawMessage `json:"channel"`
	Since    json.RawMessage `json:"since"`
	Event    json.RawMessage `json:"event"`
	Data     json.RawMessage `json:"data"`
	Encoding json.RawMessage `json:"encoding"`
	Token    json.RawMessage `json:"token"`
	Once     json.RawMessage `json:"idempotency_key"`
	Key      json.RawMessage `json:"key"`
	Presence json.RawMessage `json:"presence"`
	Delta    json.RawMessage `json:"delta"`
	Conflate json.RawMessage `json:"conflate"`
}

// The errors of parseOp about a frame's shape.
var (
	errNotObject = fmt.Errorf("%w: a frame must be a JSON object like {\"op\":\"subscribe\",\"channel\":\"news\"}", edge.ErrBadRequest)
	errBadRef    = fmt.Errorf("%w: ref must be a number or a string of at most %d bytes", edge.ErrBadRequest, maxRefLen)
	errRefRange  = fmt.Errorf("%w: ref is a number too large for a double; use a smaller number or a string", edge.ErrBadRequest)
	errRefText   = fmt.Errorf("%w: a string ref must be valid UTF-8, without lone surrogate escapes", edge.ErrBadRequest)
	errDataType  = fmt.Errorf("%w: data must be a string (to publish JSON, send it as a string; binary as base64 with \"encoding\":\"base64\")", edge.ErrBadRequest)
)

// parseOp parses and validates a client frame. On error the returned op
// still carries the ref when the frame is an object with a valid one, so
// the error frame can echo it. Error messages speak of the protocol's
// fields and JSON types; a bad ref is never returned, so what is echoed
// is always valid JSON and valid UTF-8.
func parseOp(frame []byte, maxPayload int) (clientOp, error) {
	var raw rawOp
	if !isObject(frame) || json.Unmarshal(frame, &raw) != nil {
		return clientOp{}, errNotObject
	}
	var op clientOp
	if present(raw.Ref) {
		if err := checkRef(raw.Ref); err != nil {
			return op, err
		}
		op.Ref = raw.Ref
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		into *string
	}{
		{"op", raw.Op, &op.Op}, {"channel", raw.Channel, &op.Channel}, {"since", raw.Since, &op.Since},
		{"event", raw.Event, &op.Event}, {"encoding", raw.Encoding, &op.Encoding}, {"token", raw.Token, &op.Token},
		{"idempotency_key", raw.Once, &op.IdempotencyKey}, {"key", raw.Key, &op.Key}, {"conflate", raw.Conflate, &op.Conflate},
		{"delta", raw.Delta, &op.Delta},
	} {
		if !present(f.raw) {
			continue
		}
		if !isString(f.raw) || json.Unmarshal(f.raw, f.into) != nil {
			return op, fmt.Errorf("%w: %s must be a string", edge.ErrBadRequest, f.name)
		}
	}
	if present(raw.Presence) {
		var on bool
		if json.Unmarshal(raw.Presence, &on) != nil {
			return op, fmt.Errorf("%w: presence must be true or false", edge.ErrBadRequest)
		}
		op.Presence = &on
	}
	var data *string
	if present(raw.Data) {
		data = new(string)
		if !isString(raw.Data) || json.Unmarshal(raw.Data, data) != nil {
			return op, errDataType
		}
	}
	switch op.Op {
	case opSubscribe, opUnsubscribe, opPublish:
	case opRefresh:
		if op.Token == "" {
			return op, fmt.Errorf("%w: refresh needs token", edge.ErrBadRequest)
		}
		return op, nil
	case opPing:
		return op, nil
	case "":
		return op, fmt.Errorf("%w: op is missing; use subscribe, unsubscribe, publish, refresh or ping", edge.ErrBadRequest)
	default:
		return op, fmt.Errorf("%w: unknown op %q; use subscribe, unsubscribe, publish, refresh or ping", edge.ErrBadRequest, edge.Clip(op.Op))
	}
	if err := edge.ValidateChannel(op.Channel); err != nil {
		return op, err
	}
	if op.Delta != "" {
		if op.Op != opSubscribe {
			return op, fmt.Errorf("%w: delta is only for subscribe", edge.ErrBadRequest)
		}
		if _, err := parseDelta(op.Delta); err != nil {
			return op, err
		}
	}
	if op.Since != "" {
		if op.Op != opSubscribe {
			return op, fmt.Errorf("%w: since is only for subscribe", edge.ErrBadRequest)
		}
		c, err := resume.ParseCursor(op.Since, []string{op.Channel})
		if err != nil {
			return op, err
		}
		if id, ok := c.Get(op.Channel); ok {
			op.since = &id
		}
	}
	if present(raw.Conflate) {
		if op.Op != opSubscribe {
			return op, fmt.Errorf("%w: conflate is only for subscribe", edge.ErrBadRequest)
		}
		d, err := edge.ParseConflate(op.Conflate)
		if err != nil {
			return op, err
		}
		op.conflate = d
	}
	if op.Op != opPublish {
		return op, nil
	}
	if err := edge.ValidateEvent(op.Event); err != nil {
		return op, err
	}
	if present(raw.Once) {
		if err := edge.ValidateIdempotencyKey(op.IdempotencyKey); err != nil {
			return op, err
		}
	}
	if present(raw.Key) {
		if err := edge.ValidateKey(op.Key); err != nil {
			return op, err
		}
	}
	if data == nil {
		return op, fmt.Errorf("%w: publish needs data", edge.ErrBadRequest)
	}
	switch op.Encoding {
	case "":
		op.payload = []byte(*data)
	case "base64":
		p, err := base64.StdEncoding.DecodeString(*data)
		if err != nil {
			return op, fmt.Errorf("%w: data is not base64", edge.ErrBadRequest)
		}
		op.payload = p
	default:
		return op, fmt.Errorf("%w: encoding %q; use base64 or leave it out", edge.ErrBadRequest, edge.Clip(op.Encoding))
	}
	if len(op.payload) > maxPayload {
		return op, fmt.Errorf("%w: the payload limit is %d bytes", edge.ErrPayloadTooLarge, maxPayload)
	}
	return op, nil
}

// isObject reports whether the JSON text b is an object (or not JSON at
// all, which json.Unmarshal then refuses).
func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// present reports whether a field was sent with a value other than null;
// null counts as absent, as many clients serialise a missing value so.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// isString reports whether the JSON value raw is a string.
func isString(raw json.RawMessage) bool { return raw[0] == '"' }

// checkRef reports whether ref can be echoed: a number that fits a
// double, or a string of at most maxRefLen bytes that is valid UTF-8 and
// holds no lone surrogate escape (which would decode to no character).
// encoding/json takes invalid UTF-8 inside strings, and a WebSocket text
// frame must be valid UTF-8, so the raw bytes are checked here.
func checkRef(ref json.RawMessage) error {
	if len(ref) > maxRefLen+2 {
		return errBadRef
	}
	switch c := ref[0]; {
	case c == '"':
		if !utf8.Valid(ref) || loneSurrogate(ref) {
			return errRefText
		}
		return nil
	case c == '-' || '0' <= c && c <= '9':
		if _, err := strconv.ParseFloat(string(ref), 64); err != nil {
			return errRefRange
		}
		return nil
	}
	return errBadRef
}

// loneSurrogate reports whether the JSON string s (quotes included, and
// valid JSON) has a \u escape of a UTF-16 surrogate that is not part of a
// high-low pair.
func loneSurrogate(s []byte) bool {
	for i := 1; i < len(s)-1; i++ {
		if s[i] != '\\' {
			continue
		}
		i++
		if s[i] != 'u' {
			continue
		}
		r := hex4(s[i+1 : i+5])
		i += 4
		switch {
		case utf16.IsSurrogate(r) && r >= 0xdc00:
			return true
		case utf16.IsSurrogate(r):
			if i+6 >= len(s) || s[i+1] != '\\' || s[i+2] != 'u' {
				return true
			}
			if lo := hex4(s[i+3 : i+7]); lo < 0xdc00 || lo > 0xdfff {
				return true
			}
			i += 6
		}
	}
	return false
}

// hex4 decodes four hex digits, which valid JSON guarantees after \u.
func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// serverFrame is a control frame from the edge. Message frames have no
// "type": they are the message object itself, or an array of them.
type serverFrame struct {
	Type      string          `json:"type"` // subscribed, unsubscribed, published, refreshed, pong, error, gap, disconnect
	Ref       json.RawMessage `json:"ref,omitempty"`
	Channel   string          `json:"channel,omitempty"`
	ID        string          `json:"id,omitempty"` // position after subscribe; message id after publish
	Error     *errorDetail    `json:"error,omitempty"`
	Code      int             `json:"code,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	Reconnect *bool           `json:"reconnect,omitempty"`
	RetryMs   int64           `json:"retry_ms,omitempty"`
	Cursor    string          `json:"cursor,omitempty"`
	Replayed  bool            `json:"replayed,omitempty"` // a publish repeated with its idempotency key
}

func (f serverFrame) encode() []byte { return marshalJSON(f) }

func errorFrame(ref json.RawMessage, err error) []byte {
	body, _ := newErrorBody(err)
	return serverFrame{Type: "error", Ref: ref, Error: &body.Error}.encode()
}

// appendFrameArray appends frames as one JSON array of message objects.
func appendFrameArray(b []byte, frames []*edge.Frame) []byte {
	b = append(b, '[')
	for i, f := range frames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, frameJSON(f)...)
	}
	return append(b, ']')
}
