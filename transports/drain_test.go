package transports_test

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/edge"
)

// A subscriber that stops reading is disconnected as a slow consumer and
// never slows the others: they receive every message.
func TestSlowSubscriberIsDisconnectedOthersUnaffected(t *testing.T) {
	e := startEdge(t, edge.Config{QueueBytes: 2 << 20})
	raw, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	fmt.Fprintf(raw, "GET /v1/subscribe?channel=flood HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
	br := bufio.NewReader(raw)
	for { // read the headers and the first event, then stop reading
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "id: ") {
			break
		}
	}
	good := dialWS(t, e.wsURL("channel", "flood"))
	good.readControl("subscribed")

	// The publisher stays at most 16 messages (1 MiB) ahead of the good
	// subscriber, which therefore never falls behind; the raw one does.
	const total, window = 400, 16
	payload := strings.Repeat("x", 60<<10)
	progress := make(chan int, total)
	go func() {
		defer close(progress)
		n := 0
		for n < total {
			good.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, b, err := good.conn.ReadMessage()
			if err != nil {
				return
			}
			n += strings.Count(string(b), `"channel":"flood"`)
			progress <- n
		}
	}()
	got := 0
	for i := 0; i < total; i++ {
		for got < i-window {
			n, ok := <-progress
			if !ok {
				t.Fatalf("the good subscriber stopped after %d of %d messages", got, total)
			}
			got = n
		}
		e.publish("flood", payload)
	}
	for n := range progress {
		got = n
	}
	if got != total {
		t.Fatalf("the good subscriber got %d of %d messages", got, total)
	}
	if e.srv.Hub().SlowConsumers() != 1 {
		t.Fatalf("%d slow consumers, want 1", e.srv.Hub().SlowConsumers())
	}
	wantValue(t, scrape(t, e), 1, "edge_slow_consumer_disconnects_total")
}

// On shutdown every transport is told to reconnect, and Run returns.
func TestShutdownTellsClientsToReconnect(t *testing.T) {
	e := startEdge(t, edge.Config{DrainTimeout: 4 * time.Second})
	sse := openSSE(t, e.url("/v1/subscribe", "channel", "d"), nil)
	sse.lastID()
	ws := dialWS(t, e.wsURL("channel", "d"))
	ws.readControl("subscribed")
	poll := make(chan pollAnswer, 1)
	go func() {
		var a pollAnswer
		getJSON(t, e.url("/v1/subscribe", "channel", "d", "timeout", "30s"), nil, &a)
		poll <- a
	}()
	waitSessions(t, e, 3)

	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()

	ev := sse.next()
	if ev.Event != "disconnect" || !strings.Contains(ev.Data, `"code":1012`) || !strings.Contains(ev.Data, `"reconnect":true`) {
		t.Fatalf("SSE got %+v", ev)
	}
	// The retry hint: --sse-retry plus up to 5 s of jitter.
	if ms, err := strconv.Atoi(ev.Retry); err != nil || ms < 2000 || ms > 7000 {
		t.Errorf("SSE retry hint %q ms before the disconnect, want 2000 to 7000", ev.Retry)
	}
	if f := ws.readControl("disconnect"); f.Code != 1012 || f.Reconnect == nil || !*f.Reconnect || f.Cursor == "" {
		t.Fatalf("WS got %+v", f)
	}
	ws.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := ws.conn.ReadMessage(); !websocket.IsCloseError(err, 1012) {
		t.Fatalf("WS close: %v", err)
	}
	select {
	case a := <-poll:
		if a.Disconnect == nil || a.Disconnect.Code != 1012 || !a.Disconnect.Reconnect {
			t.Fatalf("poll got %+v", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("poll not answered")
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
