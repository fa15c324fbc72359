package transports

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/edgeworks/edge/edge"
)

func TestAppendJSONString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "empty", in: "", want: `""`},
		{name: "plain", in: "news", want: `"news"`},
		{name: "quote and backslash", in: `a"b\c`, want: `"a\"b\\c"`},
		{name: "short escapes", in: "\n\r\t", want: `"\n\r\t"`},
		{name: "other control bytes", in: "\x00\x01\x08\x0c\x1f", want: `"\u0000\u0001\u0008\u000c\u001f"`},
		{name: "space and DEL are literal", in: " \x7f", want: "\" \x7f\""},
		{name: "slash is literal", in: "a/b", want: `"a/b"`},
		{name: "multi-byte UTF-8 is literal", in: "h\u00e9llo \u65e5\u672c \U0001F600", want: "\"h\u00e9llo \u65e5\u672c \U0001F600\""},
		{name: "line and paragraph separators", in: "a\u2028b\u2029c", want: `"a\u2028b\u2029c"`},
		{name: "neighbours of the separators are literal", in: "\u2027\u202a", want: "\"\u2027\u202a\""},
		{name: "escape at the end", in: "ab\n", want: `"ab\n"`},
		{name: "escape at the start", in: "\"ab", want: `"\"ab"`},
		{name: "JSON text", in: `{"price":1}`, want: `"{\"price\":1}"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendJSONString([]byte("x="), tt.in)
			if string(got) != "x="+tt.want {
				t.Fatalf("appendJSONString(%q) = %s, want %s", tt.in, got[2:], tt.want)
			}
			var back string
			if err := json.Unmarshal(got[2:], &back); err != nil {
				t.Fatalf("output %s is not a JSON string: %v", got[2:], err)
			}
			if back != tt.in {
				t.Errorf("output %s decodes to %q, want %q", got[2:], back, tt.in)
			}
		})
	}
}

func TestAppendMessageJSON(t *testing.T) {
	tests := []struct {
		name string
		msg  edge.Message
		want string
	}{
		{
			name: "JSON payload",
			msg:  edge.Message{Channel: "news", ID: edge.ID{Ms: 1732270000000, Seq: 3}, Data: []byte(`{"price":1}`)},
			want: `{"channel":"news","id":"1732270000000-3","event":"","data":"{\"price\":1}"}`,
		},
		{
			name: "event type and lines",
			msg:  edge.Message{Channel: "tenant:1/prices", ID: edge.ID{Ms: 5}, Event: "price", Data: []byte("a\r\nb\tc")},
			want: `{"channel":"tenant:1/prices","id":"5-0","event":"price","data":"a\r\nb\tc"}`,
		},
		{
			name: "empty payload",
			msg:  edge.Message{Channel: "a", Data: []byte{}},
			want: `{"channel":"a","id":"0-0","event":"","data":""}`,
		},
		{
			name: "nil payload",
			msg:  edge.Message{Channel: "a"},
			want: `{"channel":"a","id":"0-0","event":"","data":""}`,
		},
		{
			name: "UTF-8 payload",
			msg:  edge.Message{Channel: "a", ID: edge.ID{Ms: 1, Seq: 1}, Data: []byte("\u65e5\u672c\u2028")},
			want: "{\"channel\":\"a\",\"id\":\"1-1\",\"event\":\"\",\"data\":\"\u65e5\u672c\\u2028\"}",
		},
		{
			name: "NUL is valid UTF-8",
			msg:  edge.Message{Channel: "a", ID: edge.ID{Ms: 1, Seq: 1}, Data: []byte{0}},
			want: `{"channel":"a","id":"1-1","event":"","data":"\u0000"}`,
		},
		{
			name: "binary payload is base64",
			msg:  edge.Message{Channel: "a", ID: edge.ID{Ms: 1, Seq: 2}, Data: []byte{0xff, 0xfe}},
			want: `{"channel":"a","id":"1-2","event":"","encoding":"base64","data":"//4="}`,
		},
		{
			name: "truncated UTF-8 is base64",
			msg:  edge.Message{Channel: "a", ID: edge.ID{Ms: 1, Seq: 2}, Data: []byte("ab\xe6\x97")},
			want: `{"channel":"a","id":"1-2","event":"","encoding":"base64","data":"YWLmlw=="}`,
		},
		{
			name: "encoded surrogate is base64",
			msg:  edge.Message{Channel: "a", ID: edge.ID{Ms: 1, Seq: 2}, Data: []byte("\xed\xa0\x80")},
			want: `{"channel":"a","id":"1-2","event":"","encoding":"base64","data":"7aCA"}`,
		},
		{
			name: "max id",
			msg:  edge.Message{Channel: "a", ID: edge.ID{Ms: math.MaxUint64, Seq: math.MaxUint64}, Data: []byte("x")},
			want: `{"channel":"a","id":"18446744073709551615-18446744073709551615","event":"","data":"x"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendMessageJSON([]byte("["), &tt.msg)
			if string(got) != "["+tt.want {
				t.Fatalf("appendMessageJSON =\n%s\nwant\n%s", got[1:], tt.want)
			}
			if !json.Valid(got[1:]) {
				t.Errorf("output %s is not valid JSON", got[1:])
			}
		})
	}
}

func TestAppendSSEEvent(t *testing.T) {
	tests := []struct {
		name  string
		id    []byte
		event string
		data  string
		want  string
	}{
		{name: "plain", id: []byte("1-0"), data: "hello", want: "id: 1-0\ndata: hello\n\n"},
		{name: "event type", id: []byte("1-0"), event: "price", data: `{"p":1}`, want: "id: 1-0\nevent: price\ndata: {\"p\":1}\n\n"},
		{name: "no id line", id: nil, event: "price", data: "x", want: "event: price\ndata: x\n\n"},
		{name: "empty payload", id: []byte("7-1"), data: "", want: "id: 7-1\ndata: \n\n"},
		{name: "LF", id: []byte("1-0"), data: "a\nb", want: "id: 1-0\ndata: a\ndata: b\n\n"},
		{name: "CRLF", id: []byte("1-0"), data: "a\r\nb", want: "id: 1-0\ndata: a\ndata: b\n\n"},
		{name: "lone CR", id: []byte("1-0"), data: "a\rb", want: "id: 1-0\ndata: a\ndata: b\n\n"},
		{name: "LF CR is two breaks", id: []byte("1-0"), data: "a\n\rb", want: "id: 1-0\ndata: a\ndata: \ndata: b\n\n"},
		{name: "blank line in payload", id: []byte("1-0"), data: "a\n\nb", want: "id: 1-0\ndata: a\ndata: \ndata: b\n\n"},
		{name: "CR CRLF", id: []byte("1-0"), data: "a\r\r\nb", want: "id: 1-0\ndata: a\ndata: \ndata: b\n\n"},
		{name: "trailing LF", id: []byte("1-0"), data: "a\n", want: "id: 1-0\ndata: a\ndata: \n\n"},
		{name: "trailing CR", id: []byte("1-0"), data: "a\r", want: "id: 1-0\ndata: a\ndata: \n\n"},
		{name: "only breaks", id: []byte("1-0"), data: "\r\n\n\r", want: "id: 1-0\ndata: \ndata: \ndata: \ndata: \n\n"},
		{name: "leading space is kept", id: []byte("1-0"), data: " x", want: "id: 1-0\ndata:  x\n\n"},
		{name: "colon first", id: []byte("1-0"), data: ": not a comment", want: "id: 1-0\ndata: : not a comment\n\n"},
		{
			name: "fields in the payload stay data",
			id:   []byte("1-0"), data: "x\nid: 99\r\nevent: gap\rretry: 1\n\ndata: evil",
			want: "id: 1-0\ndata: x\ndata: id: 99\ndata: event: gap\ndata: retry: 1\ndata: \ndata: data: evil\n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendSSEEvent([]byte(": hi\n\n"), tt.id, tt.event, []byte(tt.data))
			if string(got) != ": hi\n\n"+tt.want {
				t.Fatalf("appendSSEEvent =\n%q\nwant\n%q", got[6:], tt.want)
			}
			events, _ := parseSSESpec([][]byte{got})
			if len(events) != 1 {
				t.Fatalf("a client sees %d events, want 1: %+v", len(events), events)
			}
			wantType := tt.event
			if wantType == "" {
				wantType = "message"
			}
			want := specSSEEvent{typ: wantType, data: normalizeSSE(tt.data), lastID: string(tt.id)}
			if events[0] != want {
				t.Errorf("a client sees %+v, want %+v", events[0], want)
			}
		})
	}
}

func TestAppendSSERetry(t *testing.T) {
	tests := []struct {
		name string
		ms   int64
		want string
	}{
		{name: "zero", ms: 0, want: "retry: 0\n\n"},
		{name: "seconds", ms: 3000, want: "retry: 3000\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendSSERetry(nil, tt.ms)); got != tt.want {
				t.Errorf("appendSSERetry(%d) = %q, want %q", tt.ms, got, tt.want)
			}
		})
	}
}

// specSSEEvent is an event as an EventSource dispatches it.
type specSSEEvent struct {
	typ    string // "message" unless an event field set it
	data   string
	lastID string
}

// specSSEParser is a minimal event-stream parser written from the WHATWG
// HTML specification (9.2.6 "Interpreting an event stream"), independent
// of the encoder: lines end at CRLF, LF or CR; a line starting with ':' is
// a comment; "field: value" loses one leading space of the value; a blank
// line dispatches; data lines are joined with LF. It accepts input in
// arbitrary chunks.
type specSSEParser struct {
	line    []byte
	afterCR bool // the previous byte was a CR, so a LF now ends nothing

	data, eventType, lastIDBuf string
	lastID                     string
	retry                      int // retry fields the stream set
	fields                     map[string]int
	events                     []specSSEEvent
}

func (p *specSSEParser) write(chunk []byte) {
	for _, c := range chunk {
		if p.afterCR {
			p.afterCR = false
			if c == '\n' {
				continue
			}
		}
		switch c {
		case '\r':
			p.afterCR = true
			p.processLine()
		case '\n':
			p.processLine()
		default:
			p.line = append(p.line, c)
		}
	}
}

func (p *specSSEParser) processLine() {
	line := string(p.line)
	p.line = p.line[:0]
	if line == "" {
		p.dispatch()
		return
	}
	if line[0] == ':' {
		return
	}
	field, value, _ := strings.Cut(line, ":")
	value = strings.TrimPrefix(value, " ")
	if p.fields == nil {
		p.fields = map[string]int{}
	}
	p.fields[field]++
	switch field {
	case "event":
		p.eventType = value
	case "data":
		p.data += value + "\n"
	case "id":
		if !strings.Contains(value, "\x00") {
			p.lastIDBuf = value
		}
	case "retry":
		if value != "" && strings.Trim(value, "0123456789") == "" {
			p.retry++
		}
	}
}

func (p *specSSEParser) dispatch() {
	p.lastID = p.lastIDBuf
	if p.data == "" {
		p.eventType = ""
		return
	}
	data := strings.TrimSuffix(p.data, "\n")
	typ := p.eventType
	if typ == "" {
		typ = "message"
	}
	p.events = append(p.events, specSSEEvent{typ: typ, data: data, lastID: p.lastID})
	p.data, p.eventType = "", ""
}

// parseSSESpec feeds chunks to a fresh parser and returns what it
// dispatched; an incomplete event at the end is discarded, as by a client
// whose stream ends.
func parseSSESpec(chunks [][]byte) ([]specSSEEvent, *specSSEParser) {
	var p specSSEParser
	for _, c := range chunks {
		p.write(c)
	}
	return p.events, &p
}

// normalizeSSE is the payload as a client must receive it: every CRLF and
// lone CR turned into LF.
func normalizeSSE(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// randomChunks splits b at random points.
func randomChunks(b []byte, r *rand.Rand) [][]byte {
	var chunks [][]byte
	for len(b) > 0 {
		n := 1 + r.IntN(min(len(b), 16))
		if r.IntN(4) == 0 {
			n = 1 + r.IntN(len(b))
		}
		chunks = append(chunks, b[:n])
		b = b[n:]
	}
	return chunks
}

// sseFuzzEvents are valid event types (the callers validate them).
var sseFuzzEvents = []string{"", "price", "message", "a:b/c@d.e_f-g", strings.Repeat("E", edge.MaxEventLen)}

func FuzzSSEEvent(f *testing.F) {
	f.Add([]byte("hello"), 0, uint64(1), uint64(0), true, uint64(1))
	f.Add([]byte(""), 1, uint64(1732270000000), uint64(3), true, uint64(2))
	f.Add([]byte("a\r\nb\rc\nd"), 2, uint64(5), uint64(5), false, uint64(3))
	f.Add([]byte("x\nid: 99\nevent: gap\nretry: 1\n\ndata: evil\n"), 3, uint64(math.MaxUint64), uint64(math.MaxUint64), true, uint64(4))
	f.Add([]byte("\r\r\n\n\r"), 4, uint64(0), uint64(0), true, uint64(5))
	f.Add([]byte(": comment\n\n\xff\xfe\x00"), 0, uint64(7), uint64(1), true, uint64(6))
	f.Fuzz(func(t *testing.T, data []byte, eventIdx int, ms, seq uint64, withID bool, chunkSeed uint64) {
		event := sseFuzzEvents[uint(eventIdx)%uint(len(sseFuzzEvents))]
		var id []byte
		if withID {
			id = edge.ID{Ms: ms, Seq: seq}.AppendTo(nil)
		}
		out := appendSSEEvent(nil, id, event, data)

		wantType := event
		if wantType == "" {
			wantType = "message"
		}
		want := specSSEEvent{typ: wantType, data: normalizeSSE(string(data)), lastID: string(id)}

		events, p := parseSSESpec([][]byte{out})
		if len(events) != 1 {
			t.Fatalf("a client sees %d events in %q, want 1", len(events), out)
		}
		if events[0] != want {
			t.Fatalf("a client sees %+v in %q, want %+v", events[0], out, want)
		}
		if len(p.line) != 0 || p.data != "" || p.eventType != "" {
			t.Fatalf("the event in %q leaves a partial line or field behind", out)
		}
		if p.retry != 0 {
			t.Fatalf("the payload set a retry field in %q", out)
		}
		for field, n := range p.fields {
			switch {
			case field == "data":
			case field == "id" && withID && n == 1:
			case field == "event" && event != "" && n == 1:
			default:
				t.Fatalf("the payload produced %d %q field(s) in %q", n, field, out)
			}
		}

		// The chunking of the stream must not matter.
		r := rand.New(rand.NewPCG(chunkSeed, uint64(len(data))))
		chunked, _ := parseSSESpec(randomChunks(out, r))
		if len(chunked) != 1 || chunked[0] != want {
			t.Fatalf("fed in chunks, a client sees %+v, want [%+v]", chunked, want)
		}

		// The event is self-delimiting: the next one on the stream arrives
		// intact, with its own id.
		stream := appendSSEEvent(out, []byte("9-9"), "", []byte("next"))
		both, _ := parseSSESpec(randomChunks(stream, r))
		next := specSSEEvent{typ: "message", data: "next", lastID: "9-9"}
		if len(both) != 2 || both[0] != want || both[1] != next {
			t.Fatalf("a client sees %+v in %q, want [%+v %+v]", both, stream, want, next)
		}
	})
}

// messageObject is the decoded JSON of a message.
type messageObject struct {
	Channel  *string `json:"channel"`
	ID       *string `json:"id"`
	Event    *string `json:"event"`
	Data     *string `json:"data"`
	Encoding *string `json:"encoding"`
}

func FuzzMessageJSON(f *testing.F) {
	f.Add("news", "", uint64(1732270000000), uint64(3), []byte(`{"price":1}`))
	f.Add("a", "price", uint64(0), uint64(0), []byte(""))
	f.Add("tenant:1/prices", "tick", uint64(math.MaxUint64), uint64(math.MaxUint64), []byte("a\r\n\t\"\\\x00\x1f\x7f"))
	f.Add("a", "", uint64(1), uint64(1), []byte("\u2028\u2029\U0001F600"))
	f.Add("a", "", uint64(1), uint64(1), []byte("\xff\xfe\x00"))
	f.Add("a", "", uint64(1), uint64(1), []byte("ab\xe6\x97"))
	f.Add("\"\\\u2028", "\n\x00", uint64(1), uint64(1), []byte("\xed\xa0\x80"))
	f.Fuzz(func(t *testing.T, channel, event string, ms, seq uint64, data []byte) {
		if !utf8.ValidString(channel) || !utf8.ValidString(event) {
			t.Skip("channel and event are validated by the callers")
		}
		msg := edge.Message{Channel: channel, ID: edge.ID{Ms: ms, Seq: seq}, Event: event, Data: data}
		out := appendMessageJSON(nil, &msg)
		if !json.Valid(out) {
			t.Fatalf("output is not valid JSON: %s", out)
		}
		if bytes.Contains(out, []byte("\u2028")) || bytes.Contains(out, []byte("\u2029")) {
			t.Fatalf("output has a raw U+2028 or U+2029, unsafe in JavaScript: %s", out)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(out, &fields); err != nil {
			t.Fatalf("output is not a JSON object: %v: %s", err, out)
		}
		var m messageObject
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("decode %s: %v", out, err)
		}
		if m.Channel == nil || *m.Channel != channel {
			t.Fatalf("channel decodes to %v, want %q: %s", m.Channel, channel, out)
		}
		if m.ID == nil || *m.ID != msg.ID.String() {
			t.Fatalf("id decodes to %v, want %q: %s", m.ID, msg.ID.String(), out)
		}
		if m.Event == nil || *m.Event != event {
			t.Fatalf("event decodes to %v, want %q: %s", m.Event, event, out)
		}
		if m.Data == nil {
			t.Fatalf("no data: %s", out)
		}
		wantFields := 4
		if utf8.Valid(data) {
			if m.Encoding != nil {
				t.Fatalf("UTF-8 payload has encoding %q: %s", *m.Encoding, out)
			}
			if *m.Data != string(data) {
				t.Fatalf("data decodes to %q, want %q: %s", *m.Data, data, out)
			}
		} else {
			wantFields = 5
			if m.Encoding == nil || *m.Encoding != "base64" {
				t.Fatalf("binary payload without \"encoding\":\"base64\": %s", out)
			}
			got, err := base64.StdEncoding.DecodeString(*m.Data)
			if err != nil {
				t.Fatalf("data is not base64: %v: %s", err, out)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("data decodes to %q, want %q", got, data)
			}
		}
		if len(fields) != wantFields {
			t.Fatalf("object has %d fields, want %d: %s", len(fields), wantFields, out)
		}
	})
}
