package transports_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

func TestSSEDeliversPayloadExactly(t *testing.T) {
	e := startEdge(t, transports.Config{})
	c := openSSE(t, e.url("/v1/subscribe", "channel", "prices"), nil)
	c.lastID()
	id1 := e.publish("prices", `{"price":1}`)
	id2 := e.publishEvent("prices", "tick", "line1\nline2")
	ev := c.next()
	if ev.ID != id1 || ev.Event != "" || ev.Data != `{"price":1}` {
		t.Fatalf("event 1 = %+v", ev)
	}
	ev = c.next()
	if ev.ID != id2 || ev.Event != "tick" || ev.Data != "line1\nline2" {
		t.Fatalf("event 2 = %+v", ev)
	}
}

func TestSSEPayloadCannotInjectFields(t *testing.T) {
	e := startEdge(t, transports.Config{})
	c := openSSE(t, e.url("/v1/subscribe", "channel", "x"), nil)
	c.lastID()
	evil := "a\r\nid: 999-0\rretry: 1\n\nevent: gap\ndata: b"
	id := e.publish("x", evil)
	after := e.publish("x", "next")
	ev := c.next()
	if ev.ID != id || ev.Event != "" || ev.Data != "a\nid: 999-0\nretry: 1\n\nevent: gap\ndata: b" {
		t.Fatalf("event = %+v", ev)
	}
	if ev := c.next(); ev.ID != after {
		t.Fatalf("the evil payload split the stream: next event %+v", ev)
	}
}

func TestSSEResume(t *testing.T) {
	for _, how := range []string{"Last-Event-ID", "since"} {
		t.Run(how, func(t *testing.T) {
			e := startEdge(t, transports.Config{})
			c := openSSE(t, e.url("/v1/subscribe", "channel", "r"), nil)
			c.lastID()
			first := e.publish("r", "1")
			if ev := c.next(); ev.ID != first {
				t.Fatalf("got %+v", ev)
			}
			c.close()
			var missed []string
			for i := 2; i <= 4; i++ {
				missed = append(missed, e.publish("r", fmt.Sprint(i)))
			}
			u, h := e.url("/v1/subscribe", "channel", "r"), http.Header{"Last-Event-Id": {first}}
			if how == "since" {
				u, h = e.url("/v1/subscribe", "channel", "r", "since", first), nil
			}
			c = openSSE(t, u, h)
			for i, id := range missed {
				if ev := c.next(); ev.ID != id || ev.Data != fmt.Sprint(i+2) {
					t.Fatalf("resumed event %d = %+v, want id %s", i, ev, id)
				}
			}
			if got := c.lastID(); got != missed[2] {
				t.Fatalf("live position %s, want %s", got, missed[2])
			}
			live := e.publish("r", "5")
			if ev := c.next(); ev.ID != live {
				t.Fatalf("live event %+v", ev)
			}
		})
	}
}

// The id-only event at the start lets EventSource resume even before the
// first message: a client that reconnects with it misses nothing.
func TestSSEInitialIDCoversMessagesBeforeTheFirst(t *testing.T) {
	e := startEdge(t, transports.Config{})
	c := openSSE(t, e.url("/v1/subscribe", "channel", "quiet"), nil)
	pos := c.lastID()
	c.close()
	id := e.publish("quiet", "while away")
	c = openSSE(t, e.url("/v1/subscribe", "channel", "quiet"), http.Header{"Last-Event-Id": {pos}})
	if ev := c.next(); ev.ID != id || ev.Data != "while away" {
		t.Fatalf("got %+v", ev)
	}
}

func TestSSEGapWhenHistoryTrimmed(t *testing.T) {
	e := startEdgeWith(t, transports.Config{}, resume.NewMemory(resume.MemoryConfig{HistorySize: 3}))
	first := e.publish("g", "0")
	var ids []string
	for i := 1; i <= 5; i++ {
		ids = append(ids, e.publish("g", fmt.Sprint(i)))
	}
	c := openSSE(t, e.url("/v1/subscribe", "channel", "g", "since", first), nil)
	ev := c.next()
	if ev.Event != "gap" || !strings.Contains(ev.Data, `"channel":"g"`) {
		t.Fatalf("first event %+v, want a gap", ev)
	}
	for _, id := range ids[2:] {
		if ev := c.next(); ev.ID != id {
			t.Fatalf("got %+v, want %s", ev, id)
		}
	}
	wantValue(t, scrape(t, e), 1, "edge_gaps_total")
}

func TestSSEMultiChannelCompositeCursor(t *testing.T) {
	e := startEdge(t, transports.Config{})
	u := e.url("/v1/subscribe", "channel", "a", "channel", "b")
	c := openSSE(t, u, nil)
	c.lastID()
	e.publish("a", "a1")
	e.publish("b", "b1")
	var cursor string
	for range 2 {
		ev := c.next()
		var m wireMessage
		if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
			t.Fatalf("multi-channel data is not the JSON object: %q", ev.Data)
		}
		if m.Data != m.Channel+"1" {
			t.Fatalf("message %+v", m)
		}
		cursor = ev.ID
	}
	c.close()
	a2 := e.publish("a", "a2")
	b2 := e.publish("b", "b2")
	c = openSSE(t, u, http.Header{"Last-Event-Id": {cursor}})
	got := map[string]string{}
	for range 2 {
		var m wireMessage
		json.Unmarshal([]byte(c.next().Data), &m)
		got[m.Channel] = m.ID + "=" + m.Data
	}
	if got["a"] != a2+"=a2" || got["b"] != b2+"=b2" {
		t.Fatalf("resumed %v", got)
	}
}

// The client's heartbeat= wins over the configured one (the default here
// would never fire within the test).
func TestSSEHeartbeatAndPadding(t *testing.T) {
	e := startEdge(t, transports.Config{Heartbeat: time.Hour, HeartbeatMin: time.Millisecond, HeartbeatMax: 2 * time.Hour})
	resp, err := http.Get(e.url("/v1/subscribe", "channel", "h", "transport", "sse", "padding", "2048", "heartbeat", "50ms"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(string(buf), ": hb\n\n") {
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat in %q", buf)
		}
		n, err := resp.Body.Read(tmp)
		if err != nil {
			t.Fatal(err)
		}
		buf = append(buf, tmp[:n]...)
	}
	if !strings.HasPrefix(string(buf), "retry: ") {
		t.Fatalf("stream does not start with retry: %q", buf[:20])
	}
	if !strings.Contains(string(buf), ":"+strings.Repeat(" ", 2048)+"\n\n") {
		t.Fatal("no 2 KiB padding comment")
	}
}

// The SSE seam under load: subscribers join with cursors while four
// publishers publish as fast as they can; each sees every message after its
// cursor exactly once, in order.
func TestSSESeamUnderConcurrentPublishing(t *testing.T) {
	runSeam(t, "seam-sse", func(e *testEdge, cursor string) func(last string) []string {
		c := openSSE(t, e.url("/v1/subscribe", "channel", "seam-sse", "since", cursor), nil)
		return func(last string) []string {
			var ids []string
			for {
				ev := c.next()
				ids = append(ids, ev.ID)
				if ev.ID == last {
					return ids
				}
			}
		}
	})
}

// cutProxy relays TCP to the edge and can cut every relayed connection,
// as a flaky network would.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer p.wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cut(); p.wg.Wait() })
	return p
}

// cut resets every relayed connection (RST, as a dropped network looks to
// both ends, not a clean end of stream).
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
	p.conns = nil
}

// The r3labs/sse client reconnects by itself with Last-Event-ID after the
// network drops, and gets exactly what it missed.
func TestR3labsClientReconnectsWithLastEventID(t *testing.T) {
	e := startEdge(t, transports.Config{})
	proxy := newCutProxy(t, strings.TrimPrefix(e.base, "http://"))
	client := sse.NewClient("http://" + proxy.ln.Addr().String() + "/v1/subscribe?channel=feed")
	got := make(chan string, 100)
	live := make(chan string, 100) // id-only events: the stream is live
	ctx, cancel := context.WithCancel(context.Background())
	client.ReconnectStrategy = backoff.WithContext(backoff.NewConstantBackOff(20*time.Millisecond), ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		client.SubscribeRawWithContext(ctx, func(ev *sse.Event) {
			switch {
			case len(ev.Data) > 0:
				got <- string(ev.Data)
			case len(ev.ID) > 0 && len(ev.Retry) == 0:
				live <- string(ev.ID)
			}
		})
	}()
	defer func() { cancel(); proxy.cut(); <-done }()
	waitFor := func(want string) {
		t.Helper()
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("got %q, want %q", g, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("timed out waiting for %q", want)
		}
	}
	select {
	case <-live:
	case <-time.After(10 * time.Second):
		t.Fatal("client never went live")
	}
	e.publish("feed", "before")
	waitFor("before")
	proxy.cut()
	e.publish("feed", "during-1")
	e.publish("feed", "during-2")
	waitFor("during-1")
	waitFor("during-2")
	e.publish("feed", "after")
	waitFor("after")
}

func TestSSEOverHTTP2(t *testing.T) {
	e := startEdge(t, transports.Config{})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", e.url("/v1/subscribe", "channel", "h2"), nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}
	c := &sseClient{t: t, resp: resp, events: make(chan sseEvent, 16), cancel: func() {}}
	go c.read()
	c.lastID()
	id := e.publish("h2", "over h2")
	if ev := c.next(); ev.ID != id || ev.Data != "over h2" {
		t.Fatalf("got %+v", ev)
	}
}
