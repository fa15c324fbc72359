package transports_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

// A subscriber that stops reading is disconnected as a slow consumer and
// never slows the others: they receive every message.
func TestSlowSubscriberIsDisconnectedOthersUnaffected(t *testing.T) {
	e := startEdge(t, transports.Config{Hub: edge.Config{QueueBytes: 2 << 20}})
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
	e := startEdge(t, transports.Config{DrainTimeout: 4 * time.Second})
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

// A publish in flight when the drain begins (the handler is waiting for
// its body) is finished: stored and answered, before the server stops.
func TestDrainFinishesInFlightPublish(t *testing.T) {
	cfg := transports.Config{DrainTimeout: 5 * time.Second}.WithDefaults()
	store := resume.NewMemory(resume.MemoryConfig{})
	e := startEdgeWith(t, cfg, store)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /v1/publish?channel=inflight HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(conn)
	// net/http answers 100 Continue when the handler starts reading the body.
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue, got %q, %v", line, err)
	}
	br.ReadString('\n')

	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()
	deadline := time.Now().Add(10 * time.Second)
	for !e.srv.Hub().ShuttingDown() {
		if time.Now().After(deadline) {
			t.Fatal("the drain never began")
		}
		time.Sleep(5 * time.Millisecond) // polling a flag, not synchronisation
	}
	fmt.Fprint(conn, "half-done!")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":`) {
		t.Fatalf("in-flight publish answered %d %s", resp.StatusCode, body)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	page, err := store.History(context.Background(), "inflight", edge.ID{}, 10)
	if err != nil || len(page.Messages) != 1 || string(page.Messages[0].Data) != "half-done!" {
		t.Fatalf("stored %+v, %v", page.Messages, err)
	}
}

// With a drain delay the edge keeps serving, new connections included,
// while /readyz answers 503; then it drains as usual.
func TestDrainDelayFailsReadinessFirst(t *testing.T) {
	const delay = 5 * time.Second
	e := startEdge(t, transports.Config{DrainDelay: delay, DrainTimeout: 2 * time.Second})
	ready := func() int {
		resp, err := http.Get(e.url("/readyz"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ready(); code != 200 {
		t.Fatalf("/readyz %d before the stop", code)
	}
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()
	deadline := time.Now().Add(10 * time.Second)
	for ready() != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("/readyz never answered 503")
		}
		time.Sleep(5 * time.Millisecond) // polling the endpoint under test
	}
	// Still serving: a new subscriber and a publish work, and the
	// subscriber is told to reconnect when the drain comes.
	sse := openSSE(t, e.url("/v1/subscribe", "channel", "late"), nil)
	sse.lastID()
	id := e.publish("late", "still here")
	if ev := sse.next(); ev.ID != id {
		t.Fatalf("during the delay the subscriber got %+v", ev)
	}
	if ev := sse.next(); ev.Event != "disconnect" {
		t.Fatalf("after the delay the subscriber got %+v", ev)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("stopped %v after the signal, before the %v delay ended", took, delay)
	}
}
