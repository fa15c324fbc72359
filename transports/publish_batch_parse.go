package transports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/edgeworks/edge/edge"
)

// Parsing a batch body.
//
// encoding/json reads a body twice (a scan for validity, then the decode,
// by reflection), which was a quarter of the CPU of a batch publish. The
// body's usual form — one object with the key "messages", an array of
// objects with the keys channel, event, key, data and data_base64, each once and
// a string — is read here in one pass, with payloads sliced from the body
// rather than copied. Anything else (another key or case of a key, a
// repeated key, null, a number, malformed JSON) is left to encoding/json,
// so that the result, and the error of a body that has one, are always
// encoding/json's: FuzzParseBatchFast holds the two to the same answer.

// batchItem is one message of a batch body.
type batchItem struct {
	channel, event, key string
	// data is the payload as text, or in base64 when base64 is set; it
	// may share the body's memory.
	data              []byte
	hasData, isBase64 bool
}

// batchRequest is the body of POST /v1/publish/batch, for encoding/json.
type batchRequest struct {
	Messages []batchMessage `json:"messages"`
}

// batchMessage is one message of a batch for encoding/json: exactly one of
// Data (text) and DataBase64 (any bytes) is to be set.
type batchMessage struct {
	Channel    string  `json:"channel"`
	Event      string  `json:"event"`
	Key        *string `json:"key"`
	Data       *string `json:"data"`
	DataBase64 *string `json:"data_base64"`
}

// decodeBatch returns the messages of a batch body, or an error that says
// what is wrong with it.
func decodeBatch(body []byte) ([]batchItem, error) {
	if items, ok := parseBatchFast(body); ok {
		return items, nil
	}
	var req batchRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf(`%w: the body must be {"messages":[{"channel","event","data" or "data_base64"},...]}: %v`, edge.ErrBadRequest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: the body holds more than one JSON value", edge.ErrBadRequest)
	}
	items := make([]batchItem, len(req.Messages))
	for i, m := range req.Messages {
		items[i] = batchItem{channel: m.Channel, event: m.Event}
		if m.Key != nil {
			items[i].key = *m.Key
		}
		switch {
		case m.Data != nil && m.DataBase64 != nil:
			items[i].hasData, items[i].isBase64 = true, true
		case m.Data != nil:
			items[i].data, items[i].hasData = []byte(*m.Data), true
		case m.DataBase64 != nil:
			items[i].data, items[i].isBase64 = []byte(*m.DataBase64), true
		}
	}
	return items, nil
}

// batchParser reads a body in the usual form. Each method returns false
// when the body is not in it.
type batchParser struct {
	b []byte
	i int
}

// parseBatchFast parses body when it is in the usual form; ok is false
// when it is not (then the caller asks encoding/json).
func parseBatchFast(body []byte) (items []batchItem, ok bool) {
	p := batchParser{b: body}
	if !p.byte('{') {
		return nil, false
	}
	key, ok := p.rawString()
	if !ok || string(key) != "messages" || !p.byte(':') || !p.byte('[') {
		return nil, false
	}
	// Each message opens a brace: a bound that a brace inside a string
	// only raises.
	items = make([]batchItem, 0, bytes.Count(body[p.i:], []byte("{")))
	if !p.peek(']') {
		for {
			var it batchItem
			prev := ""
			if n := len(items); n > 0 {
				prev = items[n-1].channel
			}
			if !p.item(&it, prev) {
				return nil, false
			}
			items = append(items, it)
			if p.peek(',') {
				p.i++
				continue
			}
			break
		}
	}
	if !p.byte(']') || !p.byte('}') {
		return nil, false
	}
	p.space()
	return items, p.i == len(p.b)
}

// item reads one message object. A channel equal to prev, the channel of
// the message before, shares its string.
func (p *batchParser) item(it *batchItem, prev string) bool {
	if !p.byte('{') {
		return false
	}
	if p.peek('}') {
		p.i++
		return true
	}
	var seen [5]bool
	for {
		key, ok := p.rawString()
		if !ok || !p.byte(':') {
			return false
		}
		v, ok := p.stringValue()
		if !ok {
			return false
		}
		var k int
		switch string(key) {
		case "channel":
			if it.channel = prev; string(v) != prev {
				it.channel = string(v)
			}
		case "event":
			k, it.event = 1, string(v)
		case "data":
			k, it.data, it.hasData = 2, v, true
		case "data_base64":
			k, it.data, it.isBase64 = 3, v, true
		case "key":
			k, it.key = 4, string(v)
		default:
			return false
		}
		if seen[k] || (it.hasData && it.isBase64) {
			return false // encoding/json says what that means
		}
		seen[k] = true
		if p.peek(',') {
			p.i++
			continue
		}
		return p.byte('}')
	}
}

// space skips JSON whitespace.
func (p *batchParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek skips whitespace and reports whether c comes next.
func (p *batchParser) peek(c byte) bool {
	p.space()
	return p.i < len(p.b) && p.b[p.i] == c
}

// byte skips whitespace and c.
func (p *batchParser) byte(c byte) bool {
	if !p.peek(c) {
		return false
	}
	p.i++
	return true
}

// rawString reads a string of printable ASCII without escapes: a key.
func (p *batchParser) rawString() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return p.b[start : p.i-1], true
		case c < 0x20 || c == '\\' || c >= utf8.RuneSelf:
			return nil, false
		}
	}
	return nil, false
}

// stringValue reads a string value: sliced from the body when it has no
// escape and is valid UTF-8, else unquoted by encoding/json (which
// replaces invalid UTF-8 and lone surrogates as it always does).
func (p *batchParser) stringValue() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	plain := true
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			raw := p.b[start : p.i-1]
			if plain {
				return raw, true
			}
			if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
				return raw, true
			}
			var s string
			if json.Unmarshal(p.b[start-1:p.i], &s) != nil {
				return nil, false
			}
			return []byte(s), true
		case c < 0x20:
			return nil, false
		case c == '\\':
			plain = false
			p.i++ // the escaped byte; encoding/json checks the escape
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return nil, false
}
