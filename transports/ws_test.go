package transports_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

func TestWSSubscribeReceivePublish(t *testing.T) {
	e := startEdge(t, transports.Config{})
	c := dialWS(t, e.wsURL("channel", "chat"))
	if f := c.readControl("subscribed"); f.Channel != "chat" || f.ID == "" {
		t.Fatalf("subscribed frame %+v", f)
	}
	c.send(map[string]any{"op": "publish", "channel": "chat", "event": "say", "data": "hi", "ref": 7})
	var ack, msg wsFrame
	for _, f := range []wsFrame{c.read(), c.read()} { // ack and message may come in either order
		if f.Type == "published" {
			ack = f
		} else {
			msg = f
		}
	}
	if string(ack.Ref) != "7" || ack.ID == "" {
		t.Fatalf("ack %+v", ack)
	}
	if len(msg.messages) != 1 || msg.messages[0] != (wireMessage{Channel: "chat", ID: ack.ID, Event: "say", Data: "hi"}) {
		t.Fatalf("message %+v", msg.messages)
	}
	id := e.publish("chat", "from http")
	if m := c.readMessages(1)[0]; m.ID != id || m.Data != "from http" {
		t.Fatalf("got %+v", m)
	}
}

func TestWSBinaryPayloadIsBase64(t *testing.T) {
	e := startEdge(t, transports.Config{})
	c := dialWS(t, e.wsURL("channel", "bin"))
	c.readControl("subscribed")
	e.publish("bin", "\xff\x00\xfe")
	if m := c.readMessages(1)[0]; m.Encoding != "base64" || m.Data != "/wD+" {
		t.Fatalf("got %+v", m)
	}
}

func TestWSOpsAndErrors(t *testing.T) {
	e := startEdge(t, transports.Config{MaxPayload: 100})
	c := dialWS(t, e.wsURL())
	for _, tc := range []struct {
		name  string
		frame string
		code  string
	}{
		{"not JSON", "hello", "bad_request"},
		{"unknown op", `{"op":"dance","channel":"a"}`, "bad_request"},
		{"missing op", `{"channel":"a"}`, "bad_request"},
		{"bad channel", `{"op":"subscribe","channel":"no spaces"}`, "bad_channel"},
		{"bad since", `{"op":"subscribe","channel":"a","since":"yesterday"}`, "bad_cursor"},
		{"oversized publish", `{"op":"publish","channel":"a","data":"` + strings.Repeat("x", 101) + `"}`, "payload_too_large"},
		{"unsubscribe unknown", `{"op":"unsubscribe","channel":"never"}`, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.conn.WriteMessage(websocket.TextMessage, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			f := c.readControl("error")
			if f.Error == nil || f.Error.Code != tc.code || f.Error.Message == "" {
				t.Fatalf("error frame %+v, want code %s", f, tc.code)
			}
		})
	}
	t.Run("binary frame", func(t *testing.T) {
		c.conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
		if f := c.readControl("error"); f.Error.Code != "bad_request" {
			t.Fatalf("%+v", f)
		}
	})
	t.Run("connection still works", func(t *testing.T) {
		c.send(map[string]any{"op": "ping", "ref": 9})
		if f := c.readControl("pong"); string(f.Ref) != `9` {
			t.Fatalf("%+v", f)
		}
		c.send(map[string]any{"op": "subscribe", "channel": "a", "ref": "s1"})
		if f := c.readControl("subscribed"); string(f.Ref) != `"s1"` {
			t.Fatalf("%+v", f)
		}
		c.send(map[string]any{"op": "subscribe", "channel": "a"})
		if f := c.readControl("error"); f.Error.Code != "bad_request" {
			t.Fatalf("double subscribe: %+v", f)
		}
		id := e.publish("a", "ok")
		if m := c.readMessages(1)[0]; m.ID != id {
			t.Fatalf("%+v", m)
		}
		c.send(map[string]any{"op": "unsubscribe", "channel": "a"})
		c.readControl("unsubscribed")
		e.publish("a", "not for you")
		c.send(map[string]any{"op": "subscribe", "channel": "b"})
		c.readControl("subscribed") // no message of "a" in between
	})
	t.Run("oversized frame closes with 1009", func(t *testing.T) {
		c.conn.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 10000)))
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := c.conn.ReadMessage()
		if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
			t.Fatalf("got %v, want close 1009", err)
		}
	})
}

func TestWSResumeWithSince(t *testing.T) {
	e := startEdge(t, transports.Config{})
	first := e.publish("w", "1")
	second := e.publish("w", "2")
	t.Run("in the URL", func(t *testing.T) {
		c := dialWS(t, e.wsURL("channel", "w", "since", first))
		if m := c.readMessages(1); m[0].ID != second {
			t.Fatalf("%+v", m)
		}
		if f := c.readControl("subscribed"); f.ID != second {
			t.Fatalf("position %s, want %s", f.ID, second)
		}
	})
	t.Run("in the subscribe op", func(t *testing.T) {
		c := dialWS(t, e.wsURL())
		c.send(map[string]any{"op": "subscribe", "channel": "w", "since": "0-0"})
		m := c.readMessages(2)
		if m[0].ID != first || m[1].ID != second {
			t.Fatalf("%+v", m)
		}
		c.readControl("subscribed")
	})
	t.Run("gap", func(t *testing.T) {
		e := startEdgeWith(t, transports.Config{}, resume.NewMemory(resume.MemoryConfig{HistorySize: 2}))
		old := e.publish("g", "0")
		for i := range 4 {
			e.publish("g", fmt.Sprint(i))
		}
		c := dialWS(t, e.wsURL("channel", "g", "since", old))
		if f := c.readControl("gap"); f.Channel != "g" {
			t.Fatalf("%+v", f)
		}
		if m := c.readMessages(2); m[0].Data != "2" || m[1].Data != "3" {
			t.Fatalf("%+v", m)
		}
	})
}

func TestWSSeamUnderConcurrentPublishing(t *testing.T) {
	runSeam(t, "seam-ws", func(e *testEdge, cursor string) func(last string) []string {
		c := dialWS(t, e.wsURL("channel", "seam-ws", "since", cursor))
		return func(last string) []string {
			var ids []string
			for {
				f := c.read()
				if f.Type == "subscribed" {
					continue
				}
				if f.Type != "" {
					t.Fatalf("unexpected %+v", f)
				}
				for _, m := range f.messages {
					ids = append(ids, m.ID)
					if m.ID == last {
						return ids
					}
				}
			}
		}
	})
}

func TestWSCompression(t *testing.T) {
	e := startEdge(t, transports.Config{})
	d := websocket.Dialer{EnableCompression: true}
	conn, resp, err := d.Dial(e.wsURL("channel", "z", "compress", "1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if ext := resp.Header.Get("Sec-Websocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("extensions %q", ext)
	}
	c := &wsClient{t: t, conn: conn}
	c.readControl("subscribed")
	id := e.publish("z", strings.Repeat("compress me ", 100))
	if m := c.readMessages(1)[0]; m.ID != id {
		t.Fatalf("%+v", m)
	}
}

func TestWSPing(t *testing.T) {
	e := startEdge(t, transports.Config{Heartbeat: 30 * time.Millisecond, HeartbeatMin: time.Millisecond})
	c := dialWS(t, e.wsURL("channel", "p"))
	pinged := make(chan struct{}, 1)
	c.conn.SetPingHandler(func(string) error {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return nil
	})
	go func() { // the read loop runs the ping handler
		for {
			if _, _, err := c.conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	select {
	case <-pinged:
	case <-time.After(10 * time.Second):
		t.Fatal("no ping")
	}
}

// A client's ping op is answered with a pong, and the edge skips its own
// WebSocket pings while the client pings: a browser (which cannot see
// those) keeps its radio to one wake-up per heartbeat.
func TestWSClientPingReplacesHeartbeat(t *testing.T) {
	const heartbeat = 100 * time.Millisecond
	e := startEdge(t, transports.Config{Heartbeat: heartbeat, HeartbeatMin: time.Millisecond})
	c := dialWS(t, e.wsURL("channel", "p"))
	c.readControl("subscribed")
	var pings atomic.Int64
	pinged := make(chan struct{}, 1)
	c.conn.SetPingHandler(func(string) error {
		pings.Add(1)
		select {
		case pinged <- struct{}{}:
		default:
		}
		return nil
	})
	pongs := make(chan wsFrame, 1)
	go func() { // the read loop runs the ping handler
		defer close(pongs)
		for {
			var f wsFrame
			if c.conn.ReadJSON(&f) != nil {
				return
			}
			pongs <- f
		}
	}()
	deadline := time.After(10 * time.Second)

	// Without client pings the edge pings every heartbeat.
	start := time.Now()
	for range 3 {
		select {
		case <-pinged:
		case <-deadline:
			t.Fatal("no heartbeat ping")
		}
	}
	idle := float64(time.Since(start)) / float64(heartbeat)
	idlePings := pings.Load()

	// Pinging four times a heartbeat, the client hears (almost) none.
	pings.Store(0)
	start = time.Now()
	tick := time.NewTicker(heartbeat / 4)
	defer tick.Stop()
	for ref := 0; time.Since(start) < 10*heartbeat; ref++ {
		c.send(map[string]any{"op": "ping", "ref": ref})
		select {
		case f := <-pongs:
			if f.Type != "pong" || string(f.Ref) != strconv.Itoa(ref) {
				t.Fatalf("got %+v, want a pong with ref %d", f, ref)
			}
		case <-deadline:
			t.Fatal("no pong")
		}
		<-tick.C
	}
	busy := float64(time.Since(start)) / float64(heartbeat)
	t.Logf("idle: %d pings in %.1f heartbeats; pinging: %d in %.1f", idlePings, idle, pings.Load(), busy)
	if float64(pings.Load())/busy > 0.5*float64(idlePings)/idle {
		t.Errorf("the edge kept pinging a client that pings: %d pings in %.1f heartbeats, against %d in %.1f idle",
			pings.Load(), busy, idlePings, idle)
	}
}

func TestWSPublishNeedsARightWithPublishKey(t *testing.T) {
	e := startEdge(t, transports.Config{PublishKeys: []string{"k"}})
	c := dialWS(t, e.wsURL())
	c.send(map[string]any{"op": "publish", "channel": "a", "data": "x"})
	if f := c.readControl("error"); f.Error.Code != "unauthorized" {
		t.Fatalf("%+v", f)
	}
}

func TestWSOriginCheck(t *testing.T) {
	e := startEdge(t, transports.Config{CORSOrigin: "https://app.example"})
	for _, tc := range []struct {
		origin string
		ok     bool
	}{{"https://app.example", true}, {"https://evil.example", false}} {
		conn, resp, err := websocket.DefaultDialer.Dial(e.wsURL("channel", "a"), http.Header{"Origin": {tc.origin}})
		if (err == nil) != tc.ok {
			t.Fatalf("origin %s: err %v", tc.origin, err)
		}
		if conn != nil {
			conn.Close()
		} else if resp.StatusCode != 400 && resp.StatusCode != 403 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// Error frames are valid JSON in valid UTF-8 text frames whatever the
// client sent (a browser fails the connection on a text frame that is
// not UTF-8), they speak the protocol, never Go, and the connection stays
// usable after them.
func TestWSErrorFramesAreValidUTF8(t *testing.T) {
	e := startEdge(t, transports.Config{})
	c := dialWS(t, e.wsURL())
	for _, tc := range []struct {
		name  string
		frame string
	}{
		{"ref with an invalid byte", "{\"op\":\"ping\",\"ref\":\"a\xffb\"}"},
		{"ref with a UTF-8 encoded surrogate", "{\"op\":\"subscribe\",\"channel\":\"a\",\"ref\":\"\xed\xa0\x80\"}"},
		{"ref with a lone surrogate escape", `{"op":"ping","ref":"\udc00"}`},
		{"ref with an invalid byte and a bad op", "{\"op\":\"dance\",\"ref\":\"\xc0\xaf\"}"},
		{"channel a number", `{"op":"subscribe","channel":42}`},
		{"data an object", `{"op":"publish","channel":"a","data":{"p":1}}`},
		{"an array", `[{"op":"ping"}]`},
		{"a huge number", `1e999`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.conn.WriteMessage(websocket.TextMessage, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			kind, b, err := c.conn.ReadMessage()
			if err != nil || kind != websocket.TextMessage {
				t.Fatalf("read: kind %d, %v", kind, err)
			}
			if !utf8.Valid(b) || !json.Valid(b) {
				t.Fatalf("frame %q is not valid UTF-8 JSON", b)
			}
			var f wsFrame
			json.Unmarshal(b, &f)
			if f.Type != "error" || f.Error == nil || f.Error.Code != "bad_request" || f.Ref != nil {
				t.Fatalf("frame %s, want a bad_request error frame without ref", b)
			}
			for _, leak := range []string{"Go ", "clientOp", "transports.", "struct"} {
				if strings.Contains(f.Error.Message, leak) {
					t.Fatalf("error %q names Go internals (%q)", f.Error.Message, leak)
				}
			}
		})
	}
	c.send(map[string]any{"op": "ping", "ref": "ok"})
	if f := c.readControl("pong"); string(f.Ref) != `"ok"` {
		t.Fatalf("after the errors: %+v", f)
	}
}

// A compressed message that inflates far beyond the read limit (a
// decompression bomb, needing no token: the upgrade names no channel) is
// refused with close 1009 while it is read, so the edge never holds the
// inflated message; a subscriber on the same edge keeps receiving.
func TestWSDecompressionBomb(t *testing.T) {
	e := startEdge(t, transports.Config{})
	good := dialWS(t, e.wsURL("channel", "steady"))
	good.readControl("subscribed")

	const inflated = 32 << 20 // zeros: about 32 KiB once compressed, well under the wire limit
	for _, tc := range []struct {
		name string
		kind int
	}{
		{"text", websocket.TextMessage},
		{"binary", websocket.BinaryMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := websocket.Dialer{EnableCompression: true}
			conn, resp, err := d.Dial(e.wsURL("compress", "1"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if !strings.Contains(resp.Header.Get("Sec-Websocket-Extensions"), "permessage-deflate") {
				t.Fatal("the edge did not negotiate compression")
			}
			zeros := make([]byte, 64<<10)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			// Streamed through gorilla's compressor, so the test never
			// holds the inflated message either. The edge may close
			// before the client has sent it all: write errors are
			// expected then.
			if w, err := conn.NextWriter(tc.kind); err == nil {
				for i := 0; i < inflated/len(zeros) && err == nil; i++ {
					_, err = w.Write(zeros)
				}
				w.Close()
			}
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			// A disconnect frame may come before the close.
			_, frame, err := conn.ReadMessage()
			var f wsFrame
			if err == nil && json.Unmarshal(frame, &f) == nil && f.Type == "disconnect" && f.Code == websocket.CloseMessageTooBig {
				_, frame, err = conn.ReadMessage()
			}
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d KiB allocated in the process while the edge read a bomb of %d MiB", allocated>>10, inflated>>20)
			if allocated > inflated/8 {
				t.Errorf("%d MiB allocated while the edge read a message of %d MiB inflated; it must stop at the limit", allocated>>20, inflated>>20)
			}
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig || ce.Text == "" {
				t.Fatalf("got frame %.200q, err %v; want close 1009 with a reason", frame, err)
			}
		})
	}
	id := e.publish("steady", "still here")
	if m := good.readMessages(1)[0]; m.ID != id {
		t.Fatalf("the subscriber got %+v, want %s", m, id)
	}
}

// A client gets every message whole, whatever its size, with and without
// permessage-deflate (without it the edge writes frames it encodes
// itself, around gorilla's writer), while it pings the edge: the pongs
// gorilla answers and the edge's frames never cut into each other.
func TestWSFramesOfEverySize(t *testing.T) {
	e := startEdge(t, transports.Config{})
	// Message objects below and above the 125 and 65,535 bytes where the
	// frame header grows.
	sizes := []int{0, 1, 60, 100, 65400, 65536}
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compression %v", compress), func(t *testing.T) {
			channel := fmt.Sprintf("sizes-%v", compress)
			conn, resp, err := (&websocket.Dialer{EnableCompression: compress}).Dial(e.wsURL("channel", channel, "compress", "1"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if negotiated := resp.Header.Get("Sec-Websocket-Extensions") != ""; negotiated != compress {
				t.Fatalf("compression negotiated: %v, want %v", negotiated, compress)
			}
			c := &wsClient{t: t, conn: conn}
			c.readControl("subscribed")
			pongs := 0
			conn.SetPongHandler(func(string) error { pongs++; return nil })
			var want []string
			for i, size := range sizes {
				if err := conn.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(5*time.Second)); err != nil {
					t.Fatal(err)
				}
				want = append(want, strings.Repeat(string(rune('a'+i)), size))
				e.publish(channel, want[i])
			}
			for i, m := range c.readMessages(len(want)) {
				if m.Data != want[i] {
					t.Fatalf("message %d: %d bytes, want %d", i, len(m.Data), len(want[i]))
				}
			}
			// Pongs are read with the messages that follow them.
			deadline := time.Now().Add(10 * time.Second)
			for pongs < len(sizes) && time.Now().Before(deadline) {
				e.publish(channel, "more")
				c.readMessages(1)
			}
			if pongs != len(sizes) {
				t.Fatalf("%d pongs to %d pings", pongs, len(sizes))
			}
		})
	}
}
