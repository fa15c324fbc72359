package transports

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/edgeworks/edge/edge"
)

// appendMessageJSON appends m as the JSON object that WebSocket frames,
// long-poll responses and multi-channel SSE events carry:
//
//	{"channel":"A","id":"1732270000000-3","event":"","data":"payload"}
//
// A message with a conflation key has "key" after "event".
// A payload that is valid UTF-8 is the "data" string itself; any other
// payload is base64 with "encoding":"base64" added.
func appendMessageJSON(b []byte, m *edge.Message) []byte {
	b = append(b, `{"channel":`...)
	b = appendJSONString(b, m.Channel)
	b = append(b, `,"id":"`...)
	b = m.ID.AppendTo(b)
	b = append(b, `","event":`...)
	b = appendJSONString(b, m.Event)
	if m.Key != "" {
		b = append(b, `,"key":`...)
		b = appendJSONString(b, m.Key)
	}
	if utf8.Valid(m.Data) {
		b = append(b, `,"data":`...)
		b = appendJSONString(b, m.Data)
	} else {
		b = append(b, `,"encoding":"base64","data":"`...)
		b = base64.StdEncoding.AppendEncode(b, m.Data)
		b = append(b, '"')
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. s must be valid UTF-8 (the
// callers check); U+2028 and U+2029 are escaped so the output is also safe
// inside JavaScript source.
func appendJSONString[T string | []byte](b []byte, s T) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf:
			continue
		case c >= utf8.RuneSelf:
			// U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
			if c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xA8 || s[i+2] == 0xA9) {
				b = append(b, s[start:i]...)
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[s[i+2]&0xf])
				i += 2
				start = i + 1
			}
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// frameJSON returns the frame's JSON object, built once per frame: the
// message object, or for a presence frame the join or leave object of
// WebSocket frames and long-poll answers:
//
//	{"channel":"A","event":"join","member":{"conn":"…","sub":"…","info":"…","node":"…"}}
func frameJSON(f *edge.Frame) []byte {
	b, _ := f.Encoded(edge.EncodingJSON, func(m *edge.Message) any {
		if f.IsPresence() {
			return appendPresenceJSON(nil, m.Channel, m.Event, f.Member)
		}
		return appendMessageJSON(nil, m)
	}).([]byte)
	return b
}

// appendPresenceJSON appends a join or leave of channel as its JSON
// object; an empty event leaves out the "event" field (SSE, where the
// event line says it).
func appendPresenceJSON(b []byte, channel, event string, m *edge.Member) []byte {
	b = append(b, `{"channel":`...)
	b = appendJSONString(b, channel)
	if event != "" {
		b = append(b, `,"event":`...)
		b = appendJSONString(b, event)
	}
	b = append(b, `,"member":`...)
	b = appendMemberJSON(b, m)
	return append(b, '}')
}

// appendMemberJSON appends m as its JSON object, every field present:
//
//	{"conn":"node-1-42","sub":"alice","info":"…","node":"node-1"}
func appendMemberJSON(b []byte, m *edge.Member) []byte {
	for i, f := range [...]struct{ name, v string }{{"conn", m.Conn}, {"sub", m.Sub}, {"info", m.Info}, {"node", m.Node}} {
		if i == 0 {
			b = append(b, `{"`...)
		} else {
			b = append(b, `,"`...)
		}
		b = append(b, f.name...)
		b = append(b, `":`...)
		// Members come from the store, which other nodes write.
		b = appendJSONString(b, strings.ToValidUTF8(f.v, "\uFFFD"))
	}
	return append(b, '}')
}

// appendSSEEvent appends one SSE event: an id line (unless id is nil), an
// event line when the type is set, and the data as one "data:" line per
// line of data. Lines end at "\n", "\r\n" or "\r", as SSE parsers split
// them, so a payload can never start a new field: a client receives the
// payload with its line breaks turned into "\n".
func appendSSEEvent(b []byte, id []byte, event string, data []byte) []byte {
	if id != nil {
		b = append(b, "id: "...)
		b = append(b, id...)
		b = append(b, '\n')
	}
	if event != "" {
		b = append(b, "event: "...)
		b = append(b, event...)
		b = append(b, '\n')
	}
	for {
		i := bytes.IndexAny(data, "\r\n")
		b = append(b, "data: "...)
		if i < 0 {
			b = append(b, data...)
			b = append(b, '\n')
			break
		}
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return append(b, '\n')
}

// frameSSE returns the frame as a complete SSE event whose id is the
// message id and whose data is the payload (streams of one channel).
//
// A presence frame is an event of its type, join or leave, without an id
// line (it is not in history, so EventSource keeps the message cursor as
// its Last-Event-ID), whose data is {"channel":"A","member":{…}}: the same
// on streams of one channel and of several.
func frameSSE(f *edge.Frame) []byte {
	b, _ := f.Encoded(edge.EncodingSSE, func(m *edge.Message) any {
		if f.IsPresence() {
			return appendSSEEvent(nil, nil, m.Event, appendPresenceJSON(nil, m.Channel, "", f.Member))
		}
		return appendSSEEvent(nil, m.ID.AppendTo(make([]byte, 0, 24)), m.Event, m.Data)
	}).([]byte)
	return b
}

// frameSSEMulti returns the frame as an SSE event without its id line,
// whose data is the JSON object (streams of several channels, where the
// writer adds the connection's own cursor as the id).
func frameSSEMulti(f *edge.Frame) []byte {
	b, _ := f.Encoded(edge.EncodingSSEMulti, func(m *edge.Message) any {
		return appendSSEEvent(nil, nil, m.Event, frameJSON(f))
	}).([]byte)
	return b
}

// appendSSERetry appends a "retry:" field.
func appendSSERetry(b []byte, ms int64) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, ms, 10)
	return append(b, '\n', '\n')
}
