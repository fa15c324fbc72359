package transports

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
)

// opSentinels are the errors parseOp may wrap.
var opSentinels = []error{edge.ErrBadRequest, edge.ErrBadChannel, edge.ErrBadCursor, edge.ErrBadEvent, edge.ErrPayloadTooLarge}

// wrapsOne reports which of opSentinels err wraps.
func wrapsOne(err error) []error {
	var found []error
	for _, s := range opSentinels {
		if errors.Is(err, s) {
			found = append(found, s)
		}
	}
	return found
}

func TestParseOp(t *testing.T) {
	const maxPayload = 16
	ref64 := `"` + strings.Repeat("r", maxRefLen) + `"`
	multi := func(raw string) string {
		var c resume.Cursor
		for part := range strings.SplitSeq(raw, ",") {
			ch, id, _ := strings.Cut(part, "=")
			parsed, err := edge.ParseID(id)
			if err != nil {
				t.Fatal(err)
			}
			c.Set(ch, parsed)
		}
		return c.String()
	}
	tests := []struct {
		name    string
		frame   string
		op      string // want op on success
		channel string
		since   *edge.ID
		event   string
		payload *string
		ref     string // want Ref, on success and on error ("" for none)
		wantErr error  // the sentinel the error must wrap
	}{
		{name: "subscribe", frame: `{"op":"subscribe","channel":"news"}`, op: opSubscribe, channel: "news"},
		{name: "subscribe with number ref", frame: `{"op":"subscribe","channel":"news","ref":1}`, op: opSubscribe, channel: "news", ref: `1`},
		{name: "subscribe with fractional ref", frame: `{"ref":-1.5e3,"op":"subscribe","channel":"news"}`, op: opSubscribe, channel: "news", ref: `-1.5e3`},
		{name: "subscribe with string ref", frame: `{"op":"subscribe","channel":"news","ref":"req-7"}`, op: opSubscribe, channel: "news", ref: `"req-7"`},
		{name: "subscribe with 64-byte ref", frame: `{"op":"subscribe","channel":"news","ref":` + ref64 + `}`, op: opSubscribe, channel: "news", ref: ref64},
		{name: "subscribe since bare id", frame: `{"op":"subscribe","channel":"news","since":"1732270000000-3"}`, op: opSubscribe, channel: "news", since: &edge.ID{Ms: 1732270000000, Seq: 3}},
		{name: "subscribe since ms only", frame: `{"op":"subscribe","channel":"news","since":"123"}`, op: opSubscribe, channel: "news", since: &edge.ID{Ms: 123}},
		{name: "subscribe since composite naming the channel", frame: `{"op":"subscribe","channel":"b","since":"` + multi("a=1-2,b=3-4") + `"}`, op: opSubscribe, channel: "b", since: &edge.ID{Ms: 3, Seq: 4}},
		{name: "subscribe since composite without the channel", frame: `{"op":"subscribe","channel":"c","since":"` + multi("a=1-2,b=3-4") + `"}`, op: opSubscribe, channel: "c"},
		{name: "subscribe with unknown fields", frame: `{"op":"subscribe","channel":"news","extra":{"x":[1]}}`, op: opSubscribe, channel: "news"},
		{name: "unsubscribe", frame: `{"op":"unsubscribe","channel":"news","ref":2}`, op: opUnsubscribe, channel: "news", ref: `2`},
		{name: "ping", frame: `{"op":"ping","ref":5}`, op: opPing, ref: `5`},
		{name: "ping without ref", frame: `{"op":"ping"}`, op: opPing},
		{name: "publish text", frame: `{"op":"publish","channel":"news","data":"{\"p\":1}","ref":3}`, op: opPublish, channel: "news", payload: opText(`{"p":1}`), ref: `3`},
		{name: "publish with event", frame: `{"op":"publish","channel":"news","event":"price","data":"x"}`, op: opPublish, channel: "news", event: "price", payload: opText("x")},
		{name: "publish empty data", frame: `{"op":"publish","channel":"news","data":""}`, op: opPublish, channel: "news", payload: opText("")},
		{name: "publish escaped text", frame: `{"op":"publish","channel":"news","data":"a\nb\u00e9\u0000"}`, op: opPublish, channel: "news", payload: opText("a\nb\u00e9\x00")},
		{name: "publish base64", frame: `{"op":"publish","channel":"news","data":"AP8=","encoding":"base64"}`, op: opPublish, channel: "news", payload: opText("\x00\xff")},
		{name: "publish exactly max", frame: `{"op":"publish","channel":"news","data":"` + strings.Repeat("x", maxPayload) + `"}`, op: opPublish, channel: "news", payload: opText(strings.Repeat("x", maxPayload))},
		{name: "publish base64 exactly max", frame: `{"op":"publish","channel":"news","encoding":"base64","data":"` + base64.StdEncoding.EncodeToString(make([]byte, maxPayload)) + `"}`, op: opPublish, channel: "news", payload: opText(strings.Repeat("\x00", maxPayload))},

		{name: "not JSON", frame: `hello`, wantErr: edge.ErrBadRequest},
		{name: "empty frame", frame: ``, wantErr: edge.ErrBadRequest},
		{name: "truncated JSON", frame: `{"op":"subscribe","channel":"news","ref":1`, wantErr: edge.ErrBadRequest},
		{name: "JSON array", frame: `[{"op":"subscribe","channel":"news"}]`, wantErr: edge.ErrBadRequest},
		{name: "JSON string", frame: `"subscribe"`, wantErr: edge.ErrBadRequest},
		{name: "JSON null", frame: `null`, wantErr: edge.ErrBadRequest},
		{name: "two objects", frame: `{"op":"subscribe","channel":"a"}{"op":"subscribe","channel":"b"}`, wantErr: edge.ErrBadRequest},
		{name: "missing op", frame: `{"channel":"news","ref":7}`, ref: `7`, wantErr: edge.ErrBadRequest},
		{name: "empty op", frame: `{"op":"","channel":"news","ref":7}`, ref: `7`, wantErr: edge.ErrBadRequest},
		{name: "unknown op", frame: `{"op":"sub","channel":"news","ref":"x"}`, ref: `"x"`, wantErr: edge.ErrBadRequest},
		{name: "long unknown op", frame: `{"op":"` + strings.Repeat("o", 10000) + `","channel":"news"}`, wantErr: edge.ErrBadRequest},
		{name: "missing channel", frame: `{"op":"subscribe","ref":1}`, ref: `1`, wantErr: edge.ErrBadChannel},
		{name: "bad channel", frame: `{"op":"subscribe","channel":"a b","ref":1}`, ref: `1`, wantErr: edge.ErrBadChannel},
		{name: "channel too long", frame: `{"op":"unsubscribe","channel":"` + strings.Repeat("c", edge.MaxChannelLen+1) + `"}`, wantErr: edge.ErrBadChannel},
		{name: "bad channel on publish", frame: `{"op":"publish","channel":"a,b","data":"x","ref":"p"}`, ref: `"p"`, wantErr: edge.ErrBadChannel},
		{name: "since on publish", frame: `{"op":"publish","channel":"a","since":"1-0","data":"x","ref":1}`, ref: `1`, wantErr: edge.ErrBadRequest},
		{name: "since on unsubscribe", frame: `{"op":"unsubscribe","channel":"a","since":"1-0","ref":1}`, ref: `1`, wantErr: edge.ErrBadRequest},
		{name: "bad since", frame: `{"op":"subscribe","channel":"a","since":"nope","ref":1}`, ref: `1`, wantErr: edge.ErrBadCursor},
		{name: "since with spaces", frame: `{"op":"subscribe","channel":"a","since":" 1-0"}`, wantErr: edge.ErrBadCursor},
		{name: "bad composite since", frame: `{"op":"subscribe","channel":"a","since":"m.!!","ref":1}`, ref: `1`, wantErr: edge.ErrBadCursor},
		{name: "publish without data", frame: `{"op":"publish","channel":"a","ref":4}`, ref: `4`, wantErr: edge.ErrBadRequest},
		{name: "publish null data", frame: `{"op":"publish","channel":"a","data":null,"ref":4}`, ref: `4`, wantErr: edge.ErrBadRequest},
		{name: "reserved event", frame: `{"op":"publish","channel":"a","event":"gap","data":"x","ref":5}`, ref: `5`, wantErr: edge.ErrBadEvent},
		{name: "bad event", frame: `{"op":"publish","channel":"a","event":"a\nb","data":"x"}`, wantErr: edge.ErrBadEvent},
		{name: "bad base64", frame: `{"op":"publish","channel":"a","data":"!!!","encoding":"base64","ref":6}`, ref: `6`, wantErr: edge.ErrBadRequest},
		{name: "unpadded base64", frame: `{"op":"publish","channel":"a","data":"AP8","encoding":"base64"}`, wantErr: edge.ErrBadRequest},
		{name: "unknown encoding", frame: `{"op":"publish","channel":"a","data":"00ff","encoding":"hex","ref":6}`, ref: `6`, wantErr: edge.ErrBadRequest},
		{name: "payload over max", frame: `{"op":"publish","channel":"a","data":"` + strings.Repeat("x", maxPayload+1) + `","ref":8}`, ref: `8`, wantErr: edge.ErrPayloadTooLarge},
		{name: "multi-byte payload over max", frame: `{"op":"publish","channel":"a","data":"` + strings.Repeat("\u00e9", maxPayload/2+1) + `"}`, wantErr: edge.ErrPayloadTooLarge},
		{name: "base64 payload over max", frame: `{"op":"publish","channel":"a","encoding":"base64","data":"` + base64.StdEncoding.EncodeToString(make([]byte, maxPayload+1)) + `"}`, wantErr: edge.ErrPayloadTooLarge},
		{name: "ref object", frame: `{"op":"subscribe","channel":"a","ref":{"id":1}}`, wantErr: edge.ErrBadRequest},
		{name: "ref array", frame: `{"op":"subscribe","channel":"a","ref":[1]}`, wantErr: edge.ErrBadRequest},
		{name: "ref bool", frame: `{"op":"subscribe","channel":"a","ref":true}`, wantErr: edge.ErrBadRequest},
		{name: "ref 65-byte string", frame: `{"op":"subscribe","channel":"a","ref":"` + strings.Repeat("r", maxRefLen+1) + `"}`, wantErr: edge.ErrBadRequest},
		{name: "ref 100-byte string", frame: `{"op":"subscribe","channel":"a","ref":"` + strings.Repeat("r", 100) + `"}`, wantErr: edge.ErrBadRequest},
		{name: "bad ref wins over a bad op", frame: `{"op":"nope","ref":{"a":1}}`, wantErr: edge.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := parseOp([]byte(tt.frame), maxPayload)
			if string(op.Ref) != tt.ref {
				t.Errorf("Ref = %s, want %s", op.Ref, tt.ref)
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("parseOp(%s) = %+v, want an error wrapping %v", edge.Clip(tt.frame), op, tt.wantErr)
				}
				if got := wrapsOne(err); len(got) != 1 || got[0] != tt.wantErr {
					t.Errorf("parseOp(%s) error %q wraps %v, want only %v", edge.Clip(tt.frame), err, got, tt.wantErr)
				}
				if len(err.Error()) > 512 {
					t.Errorf("error message is %d bytes long; untrusted input must be clipped", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("parseOp(%s): %v", tt.frame, err)
			}
			if op.Op != tt.op || op.Channel != tt.channel || op.Event != tt.event {
				t.Errorf("parseOp(%s) = op %q channel %q event %q, want %q %q %q", tt.frame, op.Op, op.Channel, op.Event, tt.op, tt.channel, tt.event)
			}
			switch {
			case tt.since == nil && op.since != nil:
				t.Errorf("since = %v, want none", *op.since)
			case tt.since != nil && (op.since == nil || *op.since != *tt.since):
				t.Errorf("since = %v, want %v", op.since, *tt.since)
			}
			switch {
			case tt.payload == nil && op.payload != nil:
				t.Errorf("payload = %q, want none", op.payload)
			case tt.payload != nil && (op.payload == nil || string(op.payload) != *tt.payload):
				t.Errorf("payload = %q, want %q", op.payload, *tt.payload)
			}
		})
	}
}

// TestParseOpKeepsRefOnTypeErrors: a frame whose fields have the wrong JSON
// type (a client sending an object as publish data is the common case) is
// still a JSON object whose ref can be read, so the error frame must echo
// that ref, as parseOp's doc promises; otherwise the client cannot match
// the error to its request.
func TestParseOpKeepsRefOnTypeErrors(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		ref   string
	}{
		{name: "object as publish data", frame: `{"op":"publish","channel":"prices","data":{"p":1},"ref":3}`, ref: `3`},
		{name: "number as channel", frame: `{"ref":"s1","op":"subscribe","channel":42}`, ref: `"s1"`},
		{name: "array as op", frame: `{"op":["subscribe"],"channel":"a","ref":9}`, ref: `9`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := parseOp([]byte(tt.frame), 1024)
			if !errors.Is(err, edge.ErrBadRequest) {
				t.Fatalf("parseOp(%s) error %v, want one wrapping edge.ErrBadRequest", tt.frame, err)
			}
			if string(op.Ref) != tt.ref {
				t.Errorf("parseOp(%s) Ref = %q, want %s", tt.frame, op.Ref, tt.ref)
			}
		})
	}
}

func opText(s string) *string { return &s }

func FuzzParseOp(f *testing.F) {
	for _, s := range []string{
		`{"op":"subscribe","channel":"news","ref":1}`,
		`{"op":"subscribe","channel":"news","since":"1-2","ref":"a"}`,
		`{"op":"subscribe","channel":"b","since":"m.YT0xLTIsYj0zLTQ"}`,
		`{"op":"subscribe","channel":"b","conflate":"1s"}`,
		`{"op":"subscribe","channel":"b","conflate":"-5ms"}`,
		`{"op":"publish","channel":"b","data":"x","key":"k","conflate":"1s"}`,
		`{"op":"unsubscribe","channel":"news"}`,
		`{"op":"ping","ref":5}`,
		`{"op":"publish","channel":"news","event":"price","data":"{\"p\":1}","ref":3}`,
		`{"op":"publish","channel":"news","data":"AP8=","encoding":"base64"}`,
		`{"op":"publish","channel":"news","data":"\u00e9\u2028","OP":"publish","Channel":"x"}`,
		`{"op":"publish","channel":"a","event":"gap","data":"x"}`,
		`{"op":"subscribe","channel":"a","ref":{"id":1}}`,
		"{\"op\":\"ping\",\"ref\":\"\xff\"}",
		`{"op":"ping","ref":"\ud800"}`,
		`{"op":"publish","channel":1e999,"data":{}}`,
		`[{"op":"subscribe"}]`,
		`null`,
		``,
	} {
		f.Add([]byte(s), 16)
	}
	f.Fuzz(func(t *testing.T, frame []byte, maxPayload int) {
		maxPayload &= 0xffff
		op, err := parseOp(frame, maxPayload)
		if len(op.Ref) > 0 {
			if checkRef(op.Ref) != nil {
				t.Fatalf("parseOp(%q) returned the invalid ref %s", frame, op.Ref)
			}
		}
		if err != nil {
			if got := wrapsOne(err); len(got) != 1 {
				t.Fatalf("parseOp(%q) error %q wraps %v, want exactly one of the client-error sentinels", frame, err, got)
			}
			code, _, msg := edge.Classify(err)
			if code == edge.ErrInternal.Code {
				t.Fatalf("parseOp(%q) error %q classifies as internal", frame, err)
			}
			for _, leak := range []string{"Go ", "clientOp", "rawOp", "transports.", "struct", "json:"} {
				if strings.Contains(msg, leak) {
					t.Fatalf("parseOp(%q) error %q names Go internals (%q)", frame, msg, leak)
				}
			}
			if f := errorFrame(op.Ref, err); !utf8.Valid(f) || !json.Valid(f) {
				t.Fatalf("parseOp(%q): error frame %q is not valid UTF-8 JSON", frame, f)
			}
			return
		}
		if f := (serverFrame{Type: "pong", Ref: op.Ref}).encode(); !utf8.Valid(f) || !json.Valid(f) {
			t.Fatalf("parseOp(%q): frame %q echoing the ref is not valid UTF-8 JSON", frame, f)
		}
		switch op.Op {
		case opSubscribe, opUnsubscribe, opPublish:
		case opRefresh:
			if op.Token == "" {
				t.Fatalf("parseOp(%q) accepted a refresh without a token", frame)
			}
			return
		case opPing:
			return
		default:
			t.Fatalf("parseOp(%q) accepted op %q", frame, op.Op)
		}
		if err := edge.ValidateChannel(op.Channel); err != nil {
			t.Fatalf("parseOp(%q) accepted channel %q: %v", frame, op.Channel, err)
		}
		if op.since != nil && op.Op != opSubscribe {
			t.Fatalf("parseOp(%q) gave a %s op a since", frame, op.Op)
		}
		if op.Op != opPublish {
			if op.payload != nil {
				t.Fatalf("parseOp(%q) gave a %s op a payload", frame, op.Op)
			}
			return
		}
		if op.payload == nil {
			t.Fatalf("parseOp(%q) accepted a publish without a payload", frame)
		}
		if len(op.payload) > maxPayload {
			t.Fatalf("parseOp(%q, %d) accepted a payload of %d bytes", frame, maxPayload, len(op.payload))
		}
		if err := edge.ValidateEvent(op.Event); err != nil {
			t.Fatalf("parseOp(%q) accepted event %q: %v", frame, op.Event, err)
		}
	})
}

// checkErrorFrame fails unless the error frame for op and err is valid
// JSON and valid UTF-8 (a WebSocket text frame must be) and echoes the
// ref as wantRef ("" for none).
func checkErrorFrame(t *testing.T, op clientOp, err error, wantRef string) {
	t.Helper()
	frame := errorFrame(op.Ref, err)
	if !utf8.Valid(frame) || !json.Valid(frame) {
		t.Fatalf("error frame %q is not valid UTF-8 JSON", frame)
	}
	var f struct {
		Ref json.RawMessage `json:"ref"`
	}
	if err := json.Unmarshal(frame, &f); err != nil {
		t.Fatal(err)
	}
	if string(f.Ref) != wantRef {
		t.Fatalf("error frame %s echoes ref %s, want %q", frame, f.Ref, wantRef)
	}
}

// A string ref must be valid UTF-8 without lone surrogate escapes: it is
// echoed as sent, and a WebSocket text frame must be valid UTF-8 (a
// browser closes the connection on one that is not). Such a ref is
// refused, and the error frame, without it, is valid JSON and UTF-8.
func TestParseOpRefMustBeValidUTF8(t *testing.T) {
	tests := []struct {
		name string
		ref  string // the raw JSON value of ref
		ok   bool
	}{
		{name: "invalid byte", ref: "\"a\xffb\""},
		{name: "two invalid bytes", ref: "\"\xff\xfe\""},
		{name: "truncated sequence", ref: "\"\xe2\x82\""},
		{name: "overlong encoding", ref: "\"\xc0\xaf\""},
		{name: "UTF-8 encoded surrogate", ref: "\"\xed\xa0\x80\""},
		{name: "lone high surrogate escape", ref: `"\ud800"`},
		{name: "lone low surrogate escape", ref: `"\udc00"`},
		{name: "high surrogate escape then a letter", ref: `"\ud800x"`},
		{name: "high surrogate escape then another escape", ref: `"\ud800\u0041"`},
		{name: "two high surrogate escapes", ref: `"\uD83D\uD83D"`},
		{name: "multi-byte UTF-8", ref: `"réf-😀"`, ok: true},
		{name: "escaped letter", ref: `"\u00e9"`, ok: true},
		{name: "surrogate pair escape", ref: `"\ud83d\ude00"`, ok: true},
		{name: "surrogate pair escape in capitals", ref: `"\uD83D\uDE00"`, ok: true},
		{name: "escaped backslash before u", ref: `"\\ud800"`, ok: true},
		{name: "U+FFFD itself", ref: `"\ufffd�"`, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := parseOp([]byte(`{"op":"ping","ref":`+tt.ref+`}`), 16)
			if tt.ok {
				if err != nil || string(op.Ref) != tt.ref {
					t.Fatalf("ref %q: got ref %q, err %v; want it accepted", tt.ref, op.Ref, err)
				}
				if frame := (serverFrame{Type: "pong", Ref: op.Ref}).encode(); !utf8.Valid(frame) || !json.Valid(frame) {
					t.Fatalf("pong frame %q is not valid UTF-8 JSON", frame)
				}
				return
			}
			if !errors.Is(err, edge.ErrBadRequest) || !strings.Contains(err.Error(), "UTF-8") {
				t.Fatalf("ref %q: got ref %q, err %v; want a bad_request error about UTF-8", tt.ref, op.Ref, err)
			}
			checkErrorFrame(t, op, err, "")
		})
	}
}

// Errors speak the protocol: they name the field and the JSON type it
// must have, never a Go type or struct (encoding/json's own messages do),
// and the error frame is valid JSON and UTF-8 that keeps a valid ref.
func TestParseOpErrorsSpeakProtocol(t *testing.T) {
	deep := func(open, close string) string { return strings.Repeat(open, 20000) + strings.Repeat(close, 20000) }
	tests := []struct {
		name  string
		frame string
		want  string // the message must contain it
		ref   string // the ref the error frame must echo
	}{
		{name: "op a number", frame: `{"op":1,"ref":1}`, want: "op must be a string", ref: "1"},
		{name: "op an array", frame: `{"op":["subscribe"],"channel":"a","ref":9}`, want: "op must be a string", ref: "9"},
		{name: "op an object", frame: `{"op":{"x":1}}`, want: "op must be a string"},
		{name: "op a bool", frame: `{"op":true}`, want: "op must be a string"},
		{name: "op a huge number", frame: `{"op":1e999}`, want: "op must be a string"},
		{name: "channel a number", frame: `{"op":"subscribe","channel":42,"ref":"s"}`, want: "channel must be a string", ref: `"s"`},
		{name: "channel a huge number", frame: `{"op":"subscribe","channel":123456789012345678901234567890e400}`, want: "channel must be a string"},
		{name: "channel an array", frame: `{"op":"subscribe","channel":["a","b"]}`, want: "channel must be a string"},
		{name: "since a number", frame: `{"op":"subscribe","channel":"a","since":1732270000000}`, want: "since must be a string"},
		{name: "event a bool", frame: `{"op":"publish","channel":"a","event":false,"data":"x"}`, want: "event must be a string"},
		{name: "data an object", frame: `{"op":"publish","channel":"a","data":{"p":1},"ref":3}`, want: "data must be a string", ref: "3"},
		{name: "data a number", frame: `{"op":"publish","channel":"a","data":1e400}`, want: "data must be a string"},
		{name: "data an array", frame: `{"op":"publish","channel":"a","data":[1,2]}`, want: "data must be a string"},
		{name: "encoding an array", frame: `{"op":"publish","channel":"a","data":"x","encoding":["base64"]}`, want: "encoding must be a string"},
		{name: "token an object", frame: `{"op":"refresh","token":{"jwt":"x"},"ref":4}`, want: "token must be a string", ref: "4"},
		{name: "ref an object", frame: `{"op":"ping","ref":{"id":1}}`, want: "ref must be a number or a string"},
		{name: "ref a bool", frame: `{"op":"ping","ref":false}`, want: "ref must be a number or a string"},
		{name: "ref a huge number", frame: `{"op":"ping","ref":1e999}`, want: "ref is a number too large"},
		{name: "array", frame: `[{"op":"subscribe","channel":"a"}]`, want: "a frame must be a JSON object"},
		{name: "number", frame: `3`, want: "a frame must be a JSON object"},
		{name: "huge number", frame: `1e999`, want: "a frame must be a JSON object"},
		{name: "string", frame: `"subscribe"`, want: "a frame must be a JSON object"},
		{name: "bool", frame: `true`, want: "a frame must be a JSON object"},
		{name: "null", frame: `null`, want: "a frame must be a JSON object"},
		{name: "empty", frame: ``, want: "a frame must be a JSON object"},
		{name: "blank", frame: " \n", want: "a frame must be a JSON object"},
		{name: "deep nesting in a field", frame: `{"op":"subscribe","channel":"a","x":` + deep("[", "]") + `}`, want: "a frame must be a JSON object"},
		{name: "deep nesting as a field value", frame: `{"op":` + deep(`{"a":`, "}") + `}`, want: "a frame must be a JSON object"},
		{name: "deep nesting at the top", frame: deep("[", "]"), want: "a frame must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := parseOp([]byte(tt.frame), 16)
			if !errors.Is(err, edge.ErrBadRequest) {
				t.Fatalf("parseOp(%s) error %v, want one wrapping edge.ErrBadRequest", edge.Clip(tt.frame), err)
			}
			_, _, msg := edge.Classify(err)
			for _, leak := range []string{"Go ", "clientOp", "rawOp", "transports.", "struct", "json:"} {
				if strings.Contains(msg, leak) {
					t.Fatalf("parseOp(%s) error %q names Go internals (%q)", edge.Clip(tt.frame), msg, leak)
				}
			}
			if !strings.Contains(msg, tt.want) {
				t.Fatalf("parseOp(%s) error %q, want one saying %q", edge.Clip(tt.frame), msg, tt.want)
			}
			checkErrorFrame(t, op, err, tt.ref)
		})
	}
}
