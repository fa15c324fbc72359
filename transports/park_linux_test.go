package transports_test

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/transports"
)

// waitParked waits until the edge has n connections parked with its idle
// watcher.
func waitParked(t *testing.T, e *testEdge, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for transports.ParkedConns(e.srv) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections parked, want %d", transports.ParkedConns(e.srv), n)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter, not synchronisation
	}
}

// openRawSSE opens an SSE stream of channel over a plain TCP connection,
// reads up to its first id and returns the connection and its reader.
func openRawSSE(t *testing.T, e *testEdge, query string) (*net.TCPConn, *bufio.Reader) {
	t.Helper()
	host := strings.TrimPrefix(e.base, "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /v1/subscribe?%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", query, host)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	readUntil(t, r, "id: ")
	return c.(*net.TCPConn), r
}

// openParkedWS opens a WebSocket subscribed to channel and returns it
// once its subscription is confirmed.
func openParkedWS(t *testing.T, e *testEdge, channel string) *wsClient {
	t.Helper()
	c := dialWS(t, e.wsURL("channel", channel))
	c.readControl("subscribed")
	return c
}

// A client that leaves a parked SSE or WebSocket connection, closing it
// or resetting it, is noticed at once: its session ends.
func TestParkedClientLeaves(t *testing.T) {
	leave := map[string]func(*net.TCPConn){
		"close": func(c *net.TCPConn) { c.Close() },
		"reset": func(c *net.TCPConn) { c.SetLinger(0); c.Close() },
		"junk":  func(c *net.TCPConn) { c.Write([]byte("junk")) }, // SSE only: an SSE client sends nothing
	}
	open := map[string]func(t *testing.T, e *testEdge) *net.TCPConn{
		"sse": func(t *testing.T, e *testEdge) *net.TCPConn {
			c, _ := openRawSSE(t, e, "channel=leave")
			return c
		},
		"ws": func(t *testing.T, e *testEdge) *net.TCPConn {
			return openParkedWS(t, e, "leave").conn.NetConn().(*net.TCPConn)
		},
	}
	for _, tr := range []string{"sse", "ws"} {
		for _, how := range []string{"close", "reset", "junk"} {
			if tr == "ws" && how == "junk" {
				continue
			}
			t.Run(tr+"/"+how, func(t *testing.T) {
				// A heartbeat far away: nothing but the watcher notices.
				e := startEdge(t, transports.Config{Heartbeat: 5 * time.Minute})
				c := open[tr](t, e)
				waitSessions(t, e, 1)
				waitParked(t, e, 1)
				leave[how](c)
				waitNoSessions(t, e)
				waitParked(t, e, 0)
			})
		}
	}
}

// A parked WebSocket connection still serves its client, compressed or
// not: ops are answered, heartbeat pings are sent and their pongs
// consumed, and the connection parks again after each.
func TestParkedWSServesClient(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) { testParkedWSServes(t, compress) })
	}
}

func testParkedWSServes(t *testing.T, compress bool) {
	const heartbeat = 50 * time.Millisecond
	e := startEdge(t, transports.Config{Heartbeat: heartbeat, HeartbeatMin: time.Millisecond})
	conn, _, err := (&websocket.Dialer{EnableCompression: compress}).Dial(e.wsURL("channel", "served", "compress", "1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &wsClient{t: t, conn: conn}
	c.readControl("subscribed")
	waitParked(t, e, 1)

	// Pings: gorilla's client answers each with a pong while it reads.
	pinged := make(chan struct{}, 1)
	ping := c.conn.PingHandler()
	c.conn.SetPingHandler(func(data string) error {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return ping(data)
	})
	frames := make(chan wsFrame, 16)
	go func() {
		defer close(frames)
		for {
			_, b, err := c.conn.ReadMessage()
			if err != nil {
				return
			}
			f, err := decodeWSFrame(b)
			if err != nil {
				t.Error(err)
				return
			}
			frames <- f
		}
	}()
	next := func() wsFrame {
		t.Helper()
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("the connection ended")
			}
			return f
		case <-time.After(10 * time.Second):
			t.Fatal("no frame")
		}
		panic("unreachable")
	}
	for range 5 {
		select {
		case <-pinged:
		case <-time.After(10 * time.Second):
			t.Fatal("no heartbeat ping")
		}
	}

	id := e.publish("other", "history")
	for i, op := range []map[string]any{
		{"op": "ping", "ref": 1},
		{"op": "subscribe", "channel": "other", "since": "0-0", "ref": 2},
		{"op": "publish", "channel": "other", "data": "live", "ref": 3},
		{"op": "unsubscribe", "channel": "other", "ref": 4},
	} {
		waitParked(t, e, 1)
		c.send(op)
		switch i {
		case 0:
			if f := next(); f.Type != "pong" || string(f.Ref) != "1" {
				t.Fatalf("got %+v, want the pong", f)
			}
		case 1:
			if f := next(); len(f.messages) != 1 || f.messages[0].ID != id {
				t.Fatalf("got %+v, want the history message %s", f, id)
			}
			if f := next(); f.Type != "subscribed" {
				t.Fatalf("got %+v, want subscribed", f)
			}
		case 2:
			// The live message and the acknowledgement, in either order.
			got := map[string]bool{}
			for range 2 {
				f := next()
				if f.Type == "" {
					got["live:"+f.messages[0].Data] = true
				} else {
					got[f.Type] = true
				}
			}
			if !got["published"] || !got["live:live"] {
				t.Fatalf("got %v, want the published acknowledgement and the live message", got)
			}
		case 3:
			if f := next(); f.Type != "unsubscribed" {
				t.Fatalf("got %+v, want unsubscribed", f)
			}
		}
	}
	waitParked(t, e, 1)
	if e.srv.Hub().Sessions() != 1 {
		t.Fatal("the session ended")
	}
}

// A WebSocket client that sends op after op keeps its reader: the reader
// waits a moment for the next message before it parks, so a busy client
// does not pay a new goroutine and a watcher round trip for each. Once the
// client stops, the connection parks.
func TestBusyWSClientKeepsItsReader(t *testing.T) {
	e := startEdge(t, transports.Config{})
	c := dialWS(t, e.wsURL("channel", "busy"))
	c.readControl("subscribed")
	waitParked(t, e, 1)
	const ops = 200
	parked := 0
	for i := range ops {
		c.send(map[string]any{"op": "ping", "ref": i})
		c.readControl("pong")
		parked += transports.ParkedConns(e.srv)
	}
	// A reply that took longer than the reader waits (200 ms) on a busy
	// machine may find it parked; a reader that parked after every
	// message is found parked after most replies.
	if parked > ops/10 {
		t.Errorf("the connection was parked after %d of %d replies", parked, ops)
	}
	waitParked(t, e, 1)
}

// A parked WebSocket client that answers neither pings nor anything else
// is dropped once silent for two heartbeats and 10 s, not before: with
// no reader waiting, the heartbeat keeps that read deadline.
func TestParkedWSSilentClientIsDropped(t *testing.T) {
	const heartbeat = 50 * time.Millisecond
	const wait = 2*heartbeat + 10*time.Second
	e := startEdge(t, transports.Config{Heartbeat: heartbeat, HeartbeatMin: time.Millisecond})
	c := dialWS(t, e.wsURL("channel", "silent"))
	start := time.Now()
	c.readControl("subscribed")
	c.conn.SetPingHandler(func(string) error { return nil }) // no pongs
	ended := make(chan time.Time, 1)
	go func() {
		c.conn.SetReadDeadline(time.Now().Add(wait + 10*time.Second))
		for {
			if _, _, err := c.conn.ReadMessage(); err != nil {
				ended <- time.Now()
				return
			}
		}
	}()
	waitParked(t, e, 1)
	at := <-ended
	took := at.Sub(start)
	if took < wait-heartbeat || took > wait+2*time.Second {
		t.Fatalf("the silent client was dropped after %v, want %v", took.Round(time.Millisecond), wait)
	}
	waitNoSessions(t, e)
}

// Idle SSE and WebSocket connections hold no goroutine: parked, each is
// watched by the server's one idle watcher. A WebSocket woken by its
// client (a pong, an op) parks again once it has answered.
func TestParkedConnectionsHoldNoGoroutine(t *testing.T) {
	const n = 200
	e := startEdge(t, transports.Config{})
	before := runtime.NumGoroutine()
	for i := range n {
		openRawSSE(t, e, fmt.Sprintf("channel=idle-%d", i))
	}
	var clients []*websocket.Conn
	for i := range n {
		clients = append(clients, openParkedWS(t, e, fmt.Sprintf("idle-%d", i)).conn)
	}
	count := func(what string) {
		t.Helper()
		waitParked(t, e, 2*n)
		// Handlers hand their connections off and end; allow for the
		// test's own few and the watcher.
		want := before + 10
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d goroutines for %d idle SSE and %d WebSocket connections; want at most %d more than the %d before",
					what, runtime.NumGoroutine(), n, n, want-before, before)
			}
			time.Sleep(5 * time.Millisecond) // polling a counter, not synchronisation
		}
	}
	count("connected")

	// Wake every WebSocket: a pong (as for a heartbeat ping) and a ping
	// op, answered one connection at a time, so that the test keeps no
	// reader per connection.
	for i, c := range clients {
		if err := c.WriteControl(websocket.PongMessage, nil, time.Now().Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteJSON(map[string]any{"op": "ping", "ref": i}); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var f wsFrame
		if err := c.ReadJSON(&f); err != nil || f.Type != "pong" {
			t.Fatalf("connection %d: %+v, %v; want a pong", i, f, err)
		}
	}
	count("after waking every WebSocket")
}

// A drain reaches parked connections: each is told to reconnect and
// closed, the watcher lets go of all of them, and Run returns with its
// goroutine ended (the package's leak check fails otherwise).
func TestShutdownReleasesParked(t *testing.T) {
	const n = 50
	e := startEdge(t, transports.Config{DrainTimeout: 4 * time.Second})
	var sse []*bufio.Reader
	for range n {
		_, r := openRawSSE(t, e, "channel=drain")
		sse = append(sse, r)
	}
	var ws []*wsClient
	for range n {
		ws = append(ws, openParkedWS(t, e, "drain"))
	}
	waitParked(t, e, 2*n)

	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()
	for i, r := range sse {
		readUntil(t, r, "event: disconnect")
		if line := readUntil(t, r, "data: "); !strings.Contains(line, `"code":1012`) {
			t.Fatalf("SSE %d: %q, want the shutdown disconnect", i, line)
		}
	}
	for i, c := range ws {
		if f := c.readControl("disconnect"); f.Code != 1012 {
			t.Fatalf("WebSocket %d: %+v, want the shutdown disconnect", i, f)
		}
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	if p := transports.ParkedConns(e.srv); p != 0 {
		t.Fatalf("%d connections still parked after Run returned", p)
	}
}
