package transports_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

// The golden wire transcripts: for every transport, requests and the
// exact bytes the edge answers, one exchange per file in
// ../testdata/golden. ../testdata/README.md describes the format and the
// normalisation for client authors.

var update = flag.Bool("update", false, "rewrite the golden wire transcripts in ../testdata/golden")

// goldenDir holds the transcripts: a fixture of the contract, not of
// this package.
var goldenDir = filepath.Join("..", "testdata", "golden")

// goldenHost is the Host of every transcript request, whatever port the
// test's edge listens on: a loopback name, so that anonymous publishing
// from loopback applies as it does for a backend on the edge's machine.
const goldenHost = "localhost:8080"

// wsKey is the Sec-WebSocket-Key of the transcripts' handshakes, the
// example of RFC 6455, so the Sec-WebSocket-Accept answered is the RFC's
// too.
const wsKey = "dGhlIHNhbXBsZSBub25jZQ=="

// goldenCase is one transcript: run drives the exchange on a fresh edge
// with cfg, whose channels retain history messages (zero: the default), and
// records it through the wire.
type goldenCase struct {
	name    string // file under testdata/golden, without ".txt"
	about   string // what the exchange shows: the file's opening lines
	cfg     transports.Config
	history int
	run     func(w *wire)
}

var goldenCases = []goldenCase{
	{
		name: "sse/stream",
		about: `An EventSource-style subscriber asks for everything retained (since=0-0) over SSE.
The edge answers retry:, the three stored messages (a JSON payload; an event
type with a two-line payload; UTF-8 text), then an id-only event with the
position. The test then publishes "live", and finally stops the edge, which
ends the stream with a disconnect event (1012 shutdown, reconnect) and closes it.`,
		run: func(w *wire) {
			w.publish("news", "", `{"headline":"hello"}`)
			w.publish("news", "note", "line one\nline two")
			last := w.publish("news", "", "grüße, 世界")
			w.send("GET /v1/subscribe?channel=news&since=0-0 HTTP/1.1\r\nHost: " + goldenHost + "\r\nAccept: text/event-stream\r\n\r\n")
			w.readUntil("response", "\n\nid: "+last+"\n\n")
			live := w.publish("news", "", "live")
			w.readUntil("response", "id: "+live+"\ndata: live\n\n")
			w.stop()
			w.readToEOF("response")
		},
	},
	{
		name: "sse/delta",
		about: `A subscriber of one channel asks for deltas (delta=fossil) over SSE, from the
channel's newest message. Its events carry the JSON object, as streams of
several channels do. The first message after the resume is full; the next,
whose base the client now holds, is a Fossil delta against it ("delta"
names the base; data is the patch, a string as it is valid UTF-8).`,
		run: func(w *wire) {
			state := func(cpu, mem int) string {
				return fmt.Sprintf(`{"host":"web-1","cpu":%d,"mem":%d,"disk":{"root":41,"data":77},"net":{"rx":1200,"tx":830},"services":["api","worker","cron"],"status":"ok"}`, cpu, mem)
			}
			first := w.publish("dash", "", state(10, 60))
			w.send("GET /v1/subscribe?channel=dash&since=" + first + "&delta=fossil HTTP/1.1\r\nHost: " + goldenHost + "\r\nAccept: text/event-stream\r\n\r\n")
			w.readUntil("response", "\n\nid: "+first+"\n\n")
			full := w.publish("dash", "", state(11, 60))
			w.readUntil("response", "id: "+full+"\n")
			w.readUntil("response", "\n\n")
			delta := w.publish("dash", "", state(12, 61))
			w.readUntil("response", "id: "+delta+"\n")
			w.readUntil("response", "\n\n")
		},
	},
	{
		name: "sse/gap",
		about: `An SSE subscriber reconnects with Last-Event-ID (as EventSource does) after the
channel's history was trimmed past it (history size 2). The edge says so with
"event: gap" before the messages it still has, then the id-only event.`,
		history: 2,
		run: func(w *wire) {
			old := w.publish("g", "", "0")
			for i := 1; i <= 2; i++ {
				w.publish("g", "", strconv.Itoa(i))
			}
			last := w.publish("g", "", "3")
			w.send("GET /v1/subscribe?channel=g HTTP/1.1\r\nHost: " + goldenHost + "\r\nAccept: text/event-stream\r\nLast-Event-ID: " + old + "\r\n\r\n")
			w.readUntil("response", "\n\nid: "+last+"\n\n")
		},
	},
	{
		name: "sse/channels",
		about: `An SSE subscriber of two channels, without a cursor. The id-only event and every
event's id are the composite cursor (the position in both channels); each
event's data is the message object, which names its channel. The test
publishes to a, then to b, after the id-only event.`,
		run: func(w *wire) {
			w.send("GET /v1/subscribe?channel=a&channel=b HTTP/1.1\r\nHost: " + goldenHost + "\r\nAccept: text/event-stream\r\n\r\n")
			w.readUntil("response", "\n\nid: m.")
			w.readUntil("response", "\n\n")
			w.publish("a", "", "to a")
			w.publish("b", "note", "to b")
			w.readUntil("response", `"data":"to b"}`+"\n\n")
		},
	},
	{
		name: "sse/heartbeat",
		about: `An SSE subscriber asks for padding=16 (for proxies that buffer the first bytes):
a comment of 16 spaces after retry:. The channel is empty, so the id-only
event carries the channel's current position. Then a heartbeat comment, as
one comes every heartbeat (20ms on this edge, 25s by default) while nothing
else is sent.`,
		cfg: transports.Config{Heartbeat: 20 * time.Millisecond, HeartbeatMin: time.Millisecond},
		run: func(w *wire) {
			w.send("GET /v1/subscribe?channel=quiet&padding=16 HTTP/1.1\r\nHost: " + goldenHost + "\r\nAccept: text/event-stream\r\n\r\n")
			w.readUntil("response", ": hb\n\n")
		},
	},
	{
		name: "ws/session",
		about: `A WebSocket subscriber that names a channel and a cursor in the URL gets the
retained messages (several in one frame: a JSON array) and "subscribed" with
the position. Then, one frame per line ("> " from the client, "< " from the
edge): a subscribe op acknowledged with its ref; a message the test publishes
to news (one message: a bare object); a publish op; a ping op answered by a
pong; an unsubscribe; a publish op refused with an error frame that echoes its
ref. Last the test stops the edge: a disconnect frame with the cursor, then
the close frame with the same code.`,
		run: func(w *wire) {
			w.publishSample()
			w.wsOpen("/v1/subscribe?channel=news&since=0-0")
			w.wsRead()
			w.wsRead()
			w.wsSend(`{"op":"subscribe","channel":"alerts","ref":1}`)
			w.wsRead()
			w.publish("news", "", "live")
			w.wsRead()
			w.newMillisecond()
			w.wsSend(`{"op":"publish","channel":"chat","event":"said","data":"hi","ref":"p-1"}`)
			w.wsRead()
			w.wsSend(`{"op":"ping","ref":2}`)
			w.wsRead()
			w.wsSend(`{"op":"unsubscribe","channel":"alerts","ref":3}`)
			w.wsRead()
			w.wsSend(`{"op":"publish","channel":"bad channel","data":"x","ref":4}`)
			w.wsRead()
			w.stop()
			w.wsRead()
			w.wsRead()
		},
	},
	{
		name: "ws/gap",
		about: `A WebSocket subscriber connects without channels and subscribes with a cursor
after which history was trimmed (history size 2): a gap frame, the messages
still retained, then "subscribed".`,
		history: 2,
		run: func(w *wire) {
			old := w.publish("g", "", "0")
			for i := 1; i <= 3; i++ {
				w.publish("g", "", strconv.Itoa(i))
			}
			w.wsOpen("/v1/subscribe")
			w.wsSend(`{"op":"subscribe","channel":"g","since":"` + old + `","ref":1}`)
			w.wsRead()
			w.wsRead()
			w.wsRead()
		},
	},
	{
		name: "ws/errors",
		about: `Client frames the edge refuses with an error frame, keeping the connection: not a
JSON object, an unknown op, a malformed cursor, a publish without data.`,
		run: func(w *wire) {
			w.wsOpen("/v1/subscribe")
			for _, op := range []string{
				`hello`,
				`{"op":"jump","ref":1}`,
				`{"op":"subscribe","channel":"news","since":"yesterday","ref":2}`,
				`{"op":"publish","channel":"news","ref":3}`,
			} {
				w.wsSend(op)
				w.wsRead()
			}
		},
	},
	{
		name: "poll/cycle",
		about: `Three long-polls on one keep-alive connection. The first asks for everything
retained and is answered at once. The second sends the cursor it got and is
held until the test publishes "live". The third, with timeout=1s, is held
and answered with no messages when the timeout passes. A held poll's answer
is written by the edge itself, hence its own header order.`,
		run: func(w *wire) {
			w.publishSample()
			w.send("GET /v1/subscribe?channel=news&since=0-0 HTTP/1.1\r\nHost: " + goldenHost + "\r\n\r\n")
			cursor := w.response()
			w.send("GET /v1/subscribe?channel=news&since=" + cursor + " HTTP/1.1\r\nHost: " + goldenHost + "\r\n\r\n")
			waitValue(w.t, w.e, 1, "edge_connections", "transport", "poll")
			live := w.publish("news", "", "live")
			w.response()
			w.send("GET /v1/subscribe?channel=news&since=" + live + "&timeout=1s HTTP/1.1\r\nHost: " + goldenHost + "\r\n\r\n")
			w.response()
		},
	},
	{
		name: "poll/gap",
		about: `A long-poll with a cursor after which history was trimmed (history size 2):
"gap":true, the channels that lost messages, and what is still retained.`,
		history: 2,
		run: func(w *wire) {
			old := w.publish("g", "", "0")
			for i := 1; i <= 3; i++ {
				w.publish("g", "", strconv.Itoa(i))
			}
			w.send("GET /v1/subscribe?channel=g&since=" + old + " HTTP/1.1\r\nHost: " + goldenHost + "\r\n\r\n")
			w.response()
		},
	},
	{
		name: "poll/disconnect",
		about: `A long-poll held while the edge stops: it is answered at once with no messages,
its cursor, and why (1012 shutdown, reconnect, after retry_ms); the
connection closes.`,
		run: func(w *wire) {
			last := w.publish("news", "", "before")
			w.send("GET /v1/subscribe?channel=news&since=" + last + " HTTP/1.1\r\nHost: " + goldenHost + "\r\n\r\n")
			waitValue(w.t, w.e, 1, "edge_connections", "transport", "poll")
			w.stop()
			w.response()
		},
	},
	{
		name: "sse/presence",
		about: `An SSE subscriber of a channel that keeps presence (--presence room.*, node n1)
asks for presence=1 with info=me. After the id-only event it hears its own
join; then another subscriber (on a connection of its own) joins and leaves;
then the test publishes "hi". Presence events have no id: line, so
EventSource's lastEventId stays the last message's.`,
		cfg: presenceGoldenConfig,
		run: func(w *wire) {
			w.send("GET /v1/subscribe?channel=room.a&presence=1&info=me HTTP/1.1\r\nHost: " + goldenHost + "\r\nAccept: text/event-stream\r\n\r\n")
			w.readUntil("response", `"info":"me","node":"n1"}}`+"\n\n")
			w.otherMember("room.a")()
			w.readUntil("response", "event: leave\n")
			w.readUntil("response", "\n\n")
			id := w.publish("room.a", "", "hi")
			w.readUntil("response", "id: "+id+"\ndata: hi\n\n")
		},
	},
	{
		name: "ws/presence",
		about: `A WebSocket subscriber names a channel that keeps presence in the URL with
presence=1 and info=me: "subscribed", then its own join. Then another
subscriber joins and leaves room.a; then a subscribe op asks for presence on
room.b with "presence":true. Presence objects carry channel, event and
member, no id and no data.`,
		cfg: presenceGoldenConfig,
		run: func(w *wire) {
			w.wsOpen("/v1/subscribe?channel=room.a&presence=1&info=me")
			w.wsRead()
			w.wsRead()
			leave := w.otherMember("room.a")
			w.wsRead()
			leave()
			w.wsRead()
			w.wsSend(`{"op":"subscribe","channel":"room.b","presence":true,"ref":1}`)
			w.wsRead()
			w.wsRead()
		},
	},
	{
		name: "poll/presence",
		about: `A long-poll with presence=1 and info=me on a channel that keeps presence. Its
first poll (timeout=0, answered at once) gets a member token; the polls that
send it back as member= are a member, kept between polls and listed by a
conn id derived from the token. The first of them hears its own join (a join
wakes a held poll as a message does); the next is held until another
subscriber joins: the answer lists that join under "presence". It hears only
while a poll is held.`,
		cfg: presenceGoldenConfig,
		run: func(w *wire) {
			last := w.publish("room.a", "", "before")
			w.send("GET /v1/subscribe?channel=room.a&presence=1&info=me&since=" + last + "&timeout=0 HTTP/1.1\r\nHost: " + goldenHost + "\r\n\r\n")
			w.response()
			w.send("GET /v1/subscribe?channel=room.a&presence=1&info=me&since=" + last + "&member=" + w.member + " HTTP/1.1\r\nHost: " + goldenHost + "\r\n\r\n")
			w.response()
			w.send("GET /v1/subscribe?channel=room.a&presence=1&info=me&since=" + last + "&member=" + w.member + " HTTP/1.1\r\nHost: " + goldenHost + "\r\n\r\n")
			waitValue(w.t, w.e, 1, "edge_connections", "transport", "poll")
			w.otherMember("room.a")
			w.response()
		},
	},
	{
		name: "publish/message",
		about: `Publishing over HTTP: the body is the payload, event= its type. The answer
comes once the message is stored, with its id. A backend on loopback needs no
key while none is configured.`,
		run: func(w *wire) {
			w.send(post("/v1/publish?channel=news&event=price", "application/json", `{"symbol":"EDGE","price":42}`))
			w.response()
		},
	},
	{
		name: "history/pages",
		about: `Reading retained messages over REST, two per page: the first page says there
is more; the next page starts after its cursor.`,
		run: func(w *wire) {
			w.publishSample()
			w.send("GET /v1/history?channel=news&limit=2 HTTP/1.1\r\nHost: " + goldenHost + "\r\n\r\n")
			cursor := w.response()
			w.send("GET /v1/history?channel=news&since=" + cursor + "&limit=2 HTTP/1.1\r\nHost: " + goldenHost + "\r\n\r\n")
			w.response()
		},
	},
	{
		name:  "errors/bad-channel",
		about: `A channel name with a byte outside the alphabet: 400 bad_channel.`,
		run: func(w *wire) {
			w.send("GET /v1/subscribe?channel=bad%20channel HTTP/1.1\r\nHost: " + goldenHost + "\r\n\r\n")
			w.response()
		},
	},
	{
		name: "errors/bad-cursor",
		about: `An SSE request with a malformed cursor: 400 bad_cursor, as JSON, instead of
a stream (EventSource reports an error and does not retry).`,
		run: func(w *wire) {
			w.send("GET /v1/subscribe?channel=news&since=yesterday HTTP/1.1\r\nHost: " + goldenHost + "\r\nAccept: text/event-stream\r\n\r\n")
			w.response()
		},
	},
	{
		name:  "errors/unauthorized",
		about: `Publishing without credentials to an edge that has a publish key: 401.`,
		cfg:   transports.Config{PublishKeys: []string{"s3cret"}},
		run: func(w *wire) {
			w.send(post("/v1/publish?channel=news", "text/plain", "hello"))
			w.response()
		},
	},
	{
		name: "errors/forbidden-origin",
		about: `A publish that a browser sends for a page of another site (its Origin is
neither the edge's nor allowed by --cors-origin): 403.`,
		run: func(w *wire) {
			w.send(post("/v1/publish?channel=news", "text/plain", "hello", "Origin: https://evil.example"))
			w.response()
		},
	},
	{
		name:  "errors/payload-too-large",
		about: `A payload over the limit (16 bytes on this edge, 64 KiB by default): 413.`,
		cfg:   transports.Config{MaxPayload: 16},
		run: func(w *wire) {
			w.send(post("/v1/publish?channel=news", "text/plain", "seventeen bytes!!"))
			w.response()
		},
	},
	{
		name:  "errors/method-not-allowed",
		about: `A method the endpoint does not serve: 405, with Allow.`,
		run: func(w *wire) {
			w.send("DELETE /v1/publish?channel=news HTTP/1.1\r\nHost: " + goldenHost + "\r\n\r\n")
			w.response()
		},
	},
	{
		name:  "errors/not-found",
		about: `A path with no endpoint: 404.`,
		run: func(w *wire) {
			w.send("GET /v2/subscribe?channel=news HTTP/1.1\r\nHost: " + goldenHost + "\r\n\r\n")
			w.response()
		},
	},
}

// publishSample publishes the transcripts' stored messages: a JSON
// payload, a typed two-line payload, and binary bytes (which WebSocket
// and long-poll carry as base64).
func (w *wire) publishSample() {
	w.publish("news", "", `{"headline":"hello"}`)
	w.publish("news", "note", "line one\nline two")
	w.publish("news", "", "\x00\xff")
}

// post is a publish request with body; extra header lines go before the
// body's.
func post(target, contentType, body string, extra ...string) string {
	var b strings.Builder
	b.WriteString("POST " + target + " HTTP/1.1\r\nHost: " + goldenHost + "\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Type: %s\r\nContent-Length: %d\r\n\r\n%s", contentType, len(body), body)
	return b.String()
}

// presenceGoldenConfig keeps presence on room.* on a node named n1, so
// that connection ids are the same from run to run.
var presenceGoldenConfig = transports.Config{Presence: []string{"room.*"}, Hub: edge.Config{Node: "n1"}}

// otherMember has another subscriber, on a connection of its own, join
// channel with info=other; it leaves when the returned func is called.
func (w *wire) otherMember(channel string) (leave func()) {
	w.t.Helper()
	c := openSSE(w.t, w.e.url("/v1/subscribe", "channel", channel, "info", "other"), nil)
	c.lastID()
	return c.close
}

// TestGolden runs every goldenCase on an edge of its own and compares the
// transcript with its file, byte for byte.
func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := &wire{t: t, e: startEdgeWith(t, tc.cfg, resume.NewMemory(resume.MemoryConfig{HistorySize: tc.history}))}
			tc.run(w)
			got := w.transcript(tc.about)
			path := filepath.Join(goldenDir, filepath.FromSlash(tc.name)+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test ./transports -run Golden -update writes it)", err)
			}
			if !bytes.Equal(got, want) {
				line, gotLine, wantLine := firstLineDiff(got, want)
				t.Errorf("the edge's bytes differ from %s at line %d:\n got: %q\nwant: %q\n(if the change is meant, rerun with -update and review the diff)\n--- the whole transcript:\n%s", path, line, gotLine, wantLine, got)
			}
		})
	}
}

// firstLineDiff returns the number of the first line where got and want
// differ, and that line of each, line break included ("" past the end).
func firstLineDiff(got, want []byte) (int, string, string) {
	g, w := bytes.SplitAfter(got, []byte("\n")), bytes.SplitAfter(want, []byte("\n"))
	line := func(lines [][]byte, i int) string {
		if i < len(lines) {
			return string(lines[i])
		}
		return ""
	}
	for i := range max(len(g), len(w)) {
		if line(g, i) != line(w, i) {
			return i + 1, line(g, i), line(w, i)
		}
	}
	return 0, "", ""
}

// wire records one transcript: what the test sends on its connection to
// the edge and what the edge answers, as named sections.
type wire struct {
	t        *testing.T
	e        *testEdge
	conn     net.Conn
	pending  []byte // read from conn, not yet in a section
	sections []section
	lastMs   int64  // the millisecond of the last id published
	member   string // the "member" token of the last response, if any
}

type section struct {
	name string
	b    []byte
}

// add appends b to the last section if it is called name, else starts a
// new one.
func (w *wire) add(name string, b []byte) {
	if n := len(w.sections); n > 0 && w.sections[n-1].name == name {
		w.sections[n-1].b = append(w.sections[n-1].b, b...)
		return
	}
	w.sections = append(w.sections, section{name, bytes.Clone(b)})
}

// publish publishes over HTTP in a millisecond of its own and returns
// the id. Ids count per channel, so two channels' messages stored in one
// millisecond could have the same id, or not, from run to run; in a
// transcript every message id differs.
func (w *wire) publish(channel, event, data string) string {
	w.t.Helper()
	w.newMillisecond()
	id := w.e.publishEvent(channel, event, data)
	ms, _, _ := strings.Cut(id, "-")
	w.lastMs, _ = strconv.ParseInt(ms, 10, 64)
	return id
}

// newMillisecond waits until the clock is past the millisecond of the
// last id published.
func (w *wire) newMillisecond() {
	deadline := time.Now().Add(time.Second)
	for time.Now().UnixMilli() <= w.lastMs {
		if time.Now().After(deadline) {
			w.t.Fatalf("the clock stayed at or before %d ms for a second", w.lastMs)
		}
		time.Sleep(100 * time.Microsecond) // waiting for the clock itself, not for another goroutine
	}
}

// send writes req, dialling the edge first if there is no connection.
func (w *wire) send(req string) {
	w.t.Helper()
	if w.conn == nil {
		c, err := net.Dial("tcp", strings.TrimPrefix(w.e.base, "http://"))
		if err != nil {
			w.t.Fatal(err)
		}
		w.t.Cleanup(func() { c.Close() })
		w.conn = c
	}
	if _, err := io.WriteString(w.conn, req); err != nil {
		w.t.Fatal(err)
	}
	w.add("request", []byte(req))
}

// fill reads from the connection until more than have bytes are pending,
// reporting false at the end of the stream.
func (w *wire) fill(have int) bool {
	w.t.Helper()
	buf := make([]byte, 4096)
	for len(w.pending) <= have {
		w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := w.conn.Read(buf)
		w.pending = append(w.pending, buf[:n]...)
		if err == io.EOF {
			return len(w.pending) > have
		}
		if err != nil {
			w.t.Fatalf("reading from the edge after %q: %v", w.pending, err)
		}
	}
	return true
}

// need returns the first n pending bytes, reading them first if needed.
func (w *wire) need(n int) []byte {
	w.t.Helper()
	for len(w.pending) < n {
		if !w.fill(len(w.pending)) {
			w.t.Fatalf("the edge closed the connection after %q, want %d bytes", w.pending, n)
		}
	}
	return w.pending[:n]
}

// take moves the first n pending bytes into section name.
func (w *wire) take(name string, n int) []byte {
	b := w.pending[:n]
	w.add(name, b)
	w.pending = w.pending[n:]
	return b
}

// readUntil reads the stream up to and including the next occurrence of
// marker into section name.
func (w *wire) readUntil(name, marker string) {
	w.t.Helper()
	for {
		if i := bytes.Index(w.pending, []byte(marker)); i >= 0 {
			w.take(name, i+len(marker))
			return
		}
		if !w.fill(len(w.pending)) {
			w.t.Fatalf("the edge closed the stream after %q, before %q", w.pending, marker)
		}
	}
}

// readToEOF reads the rest of the stream into section name.
func (w *wire) readToEOF(name string) {
	w.t.Helper()
	for w.fill(len(w.pending)) {
	}
	w.take(name, len(w.pending))
}

// readHead reads a response head into section name and returns it.
func (w *wire) readHead(name string) string {
	w.t.Helper()
	for {
		if i := bytes.Index(w.pending, []byte("\r\n\r\n")); i >= 0 {
			return string(w.take(name, i+4))
		}
		if !w.fill(len(w.pending)) {
			w.t.Fatalf("the edge closed the connection after %q, before a response head", w.pending)
		}
	}
}

var (
	contentLength = regexp.MustCompile(`\r\nContent-Length: (\d+)\r\n`)
	jsonCursor    = regexp.MustCompile(`"cursor":"([^"]*)"`)
	memberToken   = regexp.MustCompile(`"member":"([0-9a-f]{32})"`)
)

// response reads one HTTP response, whose body has a Content-Length as
// every answer but a stream's has, and returns the "cursor" its JSON
// body carries, if any.
func (w *wire) response() string {
	w.t.Helper()
	head := w.readHead("response")
	m := contentLength.FindStringSubmatch(head)
	if m == nil {
		w.t.Fatalf("a response without Content-Length:\n%s", head)
	}
	n, _ := strconv.Atoi(m[1])
	w.need(n)
	body := w.take("response", n)
	if m := memberToken.FindSubmatch(body); m != nil {
		w.member = string(m[1])
	}
	if c := jsonCursor.FindSubmatch(body); c != nil {
		return string(c[1])
	}
	return ""
}

// stop stops the edge, as a deployment's SIGTERM does.
func (w *wire) stop() {
	w.t.Helper()
	if err := w.e.stop(); err != nil {
		w.t.Fatal(err)
	}
}

// wsOpen sends a WebSocket handshake for target and reads the 101.
func (w *wire) wsOpen(target string) {
	w.t.Helper()
	w.send("GET " + target + " HTTP/1.1\r\nHost: " + goldenHost + "\r\nOrigin: http://" + goldenHost +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if head := w.readHead("response"); !strings.HasPrefix(head, "HTTP/1.1 101 ") {
		w.t.Fatalf("handshake answered:\n%s", head)
	}
}

// wsSend sends text as one masked text frame, as a client must.
func (w *wire) wsSend(text string) {
	w.t.Helper()
	mask := [4]byte{0x5e, 0x1f, 0xa9, 0x03}
	frame := []byte{0x81}
	switch n := len(text); {
	case n < 126:
		frame = append(frame, 0x80|byte(n))
	case n < 1<<16:
		frame = append(frame, 0x80|126)
		frame = binary.BigEndian.AppendUint16(frame, uint16(n))
	default:
		frame = append(frame, 0x80|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(n))
	}
	frame = append(frame, mask[:]...)
	for i := range len(text) {
		frame = append(frame, text[i]^mask[i%4])
	}
	if _, err := w.conn.Write(frame); err != nil {
		w.t.Fatal(err)
	}
	w.add("frames", []byte("> "+text+"\n"))
}

// wsRead reads the edge's next message (or control frame) and records it
// as a line of the frames section: the text of a text message; "ping",
// "pong" or "close CODE REASON" for control frames; "binary BASE64".
func (w *wire) wsRead() {
	w.t.Helper()
	var msg []byte
	var kind byte
	for {
		h := w.need(2)
		fin, op, n, hl := h[0]&0x80 != 0, h[0]&0x0f, int(h[1]&0x7f), 2
		if h[1]&0x80 != 0 {
			w.t.Fatal("the edge sent a masked frame")
		}
		switch n {
		case 126:
			n, hl = int(binary.BigEndian.Uint16(w.need(4)[2:])), 4
		case 127:
			n, hl = int(binary.BigEndian.Uint64(w.need(10)[2:])), 10
		}
		payload := bytes.Clone(w.need(hl + n)[hl:])
		w.pending = w.pending[hl+n:]
		if op >= 8 { // a control frame, which may come between fragments
			w.add("frames", []byte("< "+controlLine(op, payload)+"\n"))
			return
		}
		if op != 0 {
			kind = op
		}
		msg = append(msg, payload...)
		if fin {
			break
		}
	}
	line := string(msg)
	if kind != 1 {
		line = "binary " + base64.StdEncoding.EncodeToString(msg)
	}
	w.add("frames", []byte("< "+line+"\n"))
}

// controlLine renders a WebSocket control frame.
func controlLine(op byte, payload []byte) string {
	switch op {
	case 8:
		if len(payload) < 2 {
			return "close"
		}
		return fmt.Sprintf("close %d %s", binary.BigEndian.Uint16(payload), payload[2:])
	case 9:
		return strings.TrimSpace("ping " + string(payload))
	case 10:
		return strings.TrimSpace("pong " + string(payload))
	}
	return fmt.Sprintf("control %d %q", op, payload)
}

// transcript returns the file: about, then each section after a line
// "-- NAME --", followed by one "\n" that is not part of it. The
// normalisation of ../testdata/README.md applies.
func (w *wire) transcript(about string) []byte {
	var n normalizer
	var b bytes.Buffer
	b.WriteString(about + "\n\n")
	for _, s := range w.sections {
		b.WriteString("-- " + s.name + " --\n")
		b.Write(fixContentLength(n.normalize(s.b)))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// normalizer replaces what differs from run to run with placeholders, the
// same value always with the same placeholder within one transcript.
type normalizer struct {
	ids map[string]string
}

var (
	// idOrCursor matches a composite cursor or a message id.
	idOrCursor = regexp.MustCompile(`\bm\.[A-Za-z0-9_-]{4,}|\b\d{13}-\d+\b`)
	// compositeBody is a decoded composite cursor: channel=id pairs.
	compositeBody = regexp.MustCompile(`^[^=,]+=\d+-\d+(,[^=,]+=\d+-\d+)*$`)
	dateHeader    = regexp.MustCompile(`\r\nDate: ([^\r\n]*)\r\n`)
	requestID     = regexp.MustCompile(`\r\nX-Request-Id: ([A-Z2-7]{8}-[0-9a-z]+)\r\n`)
	retryMs       = regexp.MustCompile(`"retry_ms":(\d+)|retry: (\d+)\n\nevent: disconnect\n`)
	// pollMember matches a long-poll member's token (in an answer or
	// member=) or its conn id, both random.
	pollMember = regexp.MustCompile(`"member":"[0-9a-f]{32}"|member=[0-9a-f]{32}\b|"poll-[0-9a-f]{20}"`)
)

func (n *normalizer) normalize(b []byte) []byte {
	b = idOrCursor.ReplaceAllFunc(b, func(m []byte) []byte {
		if m[0] != 'm' {
			return []byte(n.id(string(m)))
		}
		raw, err := base64.RawURLEncoding.DecodeString(string(m[2:]))
		if err != nil || !compositeBody.Match(raw) {
			return m
		}
		pairs := strings.Split(string(raw), ",")
		for i, p := range pairs {
			ch, id, _ := strings.Cut(p, "=")
			pairs[i] = ch + "=" + n.id(id)
		}
		return []byte("<cursor " + strings.Join(pairs, ",") + ">")
	})
	b = dateHeader.ReplaceAllFunc(b, func(m []byte) []byte {
		if _, err := http.ParseTime(string(dateHeader.FindSubmatch(m)[1])); err != nil {
			return m
		}
		return []byte("\r\nDate: <date>\r\n")
	})
	b = requestID.ReplaceAll(b, []byte("\r\nX-Request-Id: <request-id>\r\n"))
	b = pollMember.ReplaceAllFunc(b, func(m []byte) []byte {
		switch {
		case m[0] == 'm':
			return []byte("member=<member-token>")
		case bytes.HasPrefix(m, []byte(`"poll-`)):
			return []byte(`"poll-<hash of the token>"`)
		}
		return []byte(`"member":"<member-token>"`)
	})
	return retryMs.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := retryMs.FindSubmatch(m)
		v := sub[1]
		if v == nil {
			v = sub[2]
		}
		// The jittered reconnect delay after a shutdown: the SSE retry
		// (2s) and up to 5s more.
		if ms, _ := strconv.Atoi(string(v)); ms < 2000 || ms >= 7000 {
			return m
		}
		return bytes.Replace(m, v, []byte("<retry-ms>"), 1)
	})
}

// id returns the placeholder of the message id real: <id1>, <id2>, … in
// order of first appearance.
func (n *normalizer) id(real string) string {
	if n.ids == nil {
		n.ids = map[string]string{}
	}
	if _, ok := n.ids[real]; !ok {
		n.ids[real] = fmt.Sprintf("<id%d>", len(n.ids)+1)
	}
	return n.ids[real]
}

// fixContentLength sets the Content-Length of an HTTP message to its
// body's length after normalisation. The edge's value was the body's
// exact length: response read exactly that many bytes and found the end
// of the message there.
func fixContentLength(b []byte) []byte {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		return b
	}
	head, body := b[:i+4], b[i+4:]
	loc := contentLength.FindSubmatchIndex(head)
	if loc == nil {
		return b
	}
	out := append(bytes.Clone(head[:loc[2]]), strconv.Itoa(len(body))...)
	out = append(out, head[loc[3]:]...)
	return append(out, body...)
}
