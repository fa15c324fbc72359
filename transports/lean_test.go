package transports_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/transports"
)

// Idle connections cost at most one goroutine each: SSE and WebSocket one
// blocked reader where they cannot be parked (off Linux; on Linux they
// hold none, see TestParkedConnectionsHoldNoGoroutine), a waiting
// long-poll none. (Memory per connection is measured with cmd/edge-bench.)
func TestIdleConnectionGoroutines(t *testing.T) {
	e := startEdge(t, transports.Config{})
	host := strings.TrimPrefix(e.base, "http://")
	const n = 40
	before := runtime.NumGoroutine()

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	request := func(query, extra string) *bufio.Reader {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /v1/subscribe?%s HTTP/1.1\r\nHost: %s\r\n%s\r\n", query, host, extra)
		return bufio.NewReader(c)
	}
	for i := range n {
		r := request(fmt.Sprintf("channel=idle-%d", i), "Accept: text/event-stream\r\n")
		readUntil(t, r, "id: ") // joined
	}
	for i := range n {
		ws, _, err := websocket.DefaultDialer.Dial(e.wsURL("channel", fmt.Sprintf("idle-%d", i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, ws.NetConn())
		if _, frame, err := ws.ReadMessage(); err != nil || !strings.Contains(string(frame), `"subscribed"`) {
			t.Fatalf("websocket: %s, %v", frame, err)
		}
	}
	for i := range n {
		request(fmt.Sprintf("channel=idle-%d&timeout=1m", i), "")
	}
	waitSessions(t, e, 3*n)

	// Handlers hand their connections off and end; wait for that.
	want := before + 2*n + 10 // + the test's own few
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines for %d idle SSE, %d WebSocket and %d long-poll connections; want at most %d more than the %d before",
				runtime.NumGoroutine(), n, n, n, want-before, before)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter, not synchronisation
	}
}

// readUntil reads lines of r until one starts with prefix.
func readUntil(t *testing.T, r *bufio.Reader, prefix string) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading for %q: %v", prefix, err)
		}
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
}

// A long-poll that waited answers on the same keep-alive connection, and
// the next poll reuses it.
func TestParkedPollKeepsConnection(t *testing.T) {
	e := startEdge(t, transports.Config{})
	var dials atomic.Int32
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
	defer client.CloseIdleConnections()
	poll := func(query ...string) (*http.Response, pollAnswer) {
		t.Helper()
		resp, err := client.Get(e.url("/v1/subscribe", query...))
		if err != nil {
			t.Fatal(err)
		}
		var a pollAnswer
		decodeJSON(t, resp, &a)
		return resp, a
	}

	_, a := poll("channel", "k", "timeout", "0")
	answered := make(chan pollAnswer, 1)
	go func() {
		_, a := poll("channel", "k", "since", a.Cursor, "timeout", "1m")
		answered <- a
	}()
	waitSessions(t, e, 1)
	id := e.publish("k", "wake")
	select {
	case a = <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("parked poll not answered")
	}
	if len(a.Messages) != 1 || a.Messages[0].ID != id || a.Cursor != id {
		t.Fatalf("answer %+v, want message %s", a, id)
	}
	resp, a := poll("channel", "k", "since", a.Cursor, "timeout", "10ms")
	if len(a.Messages) != 0 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("timed-out poll: %+v, %v", a, resp.Header)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d connections for three polls, want 1 (keep-alive)", n)
	}
}

// A request the client sent behind a waiting poll is served once the poll
// answers.
func TestParkedPollPipelined(t *testing.T) {
	e := startEdge(t, transports.Config{})
	host := strings.TrimPrefix(e.base, "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /v1/subscribe?channel=p&timeout=50ms HTTP/1.1\r\nHost: %s\r\n\r\n"+
		"GET /healthz HTTP/1.1\r\nHost: %[1]s\r\nConnection: close\r\n\r\n", host)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	for _, want := range []string{`"gap":false`, `"status":"ok"`} {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Fatalf("got %s %s, want %s", resp.Status, body, want)
		}
	}
}

// Over HTTP/2, where connections cannot be hijacked, a long-poll waits in
// its handler and answers the same.
func TestPollOverHTTP2(t *testing.T) {
	e := startEdge(t, transports.Config{})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	answered := make(chan pollAnswer, 1)
	go func() {
		resp, err := client.Get(e.url("/v1/subscribe", "channel", "h2poll", "timeout", "1m"))
		if err != nil {
			t.Error(err)
			answered <- pollAnswer{}
			return
		}
		if resp.ProtoMajor != 2 {
			t.Errorf("protocol %s, want HTTP/2", resp.Proto)
		}
		var a pollAnswer
		decodeJSON(t, resp, &a)
		answered <- a
	}()
	waitSessions(t, e, 1)
	id := e.publish("h2poll", "over h2")
	select {
	case a := <-answered:
		if len(a.Messages) != 1 || a.Messages[0].ID != id {
			t.Fatalf("answer %+v, want %s", a, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("poll over HTTP/2 not answered")
	}
}
