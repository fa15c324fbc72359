package transports_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

func TestPollWaitsForMessage(t *testing.T) {
	e := startEdge(t, transports.Config{})
	answer := make(chan pollAnswer, 1)
	go func() {
		var a pollAnswer
		getJSON(t, e.url("/v1/subscribe", "channel", "lp"), nil, &a)
		answer <- a
	}()
	var id string
	// The poll joins asynchronously: publish until it answers (messages
	// published before it joined are, correctly, not delivered).
	deadline := time.Now().Add(10 * time.Second)
	for a := (pollAnswer{}); ; {
		id = e.publish("lp", "hello")
		select {
		case a = <-answer:
			if len(a.Messages) != 1 || a.Messages[0].Data != "hello" || a.Cursor != a.Messages[0].ID || a.Gap {
				t.Fatalf("answer %+v", a)
			}
			_ = id
			return
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("poll never answered")
		}
	}
}

func TestPollCursorChain(t *testing.T) {
	e := startEdge(t, transports.Config{})
	var a pollAnswer
	getJSON(t, e.url("/v1/subscribe", "channel", "c", "timeout", "0"), nil, &a)
	if len(a.Messages) != 0 || a.Cursor == "" {
		t.Fatalf("timeout answer %+v", a)
	}
	cursor := a.Cursor
	var want []string
	for i := range 250 {
		want = append(want, e.publish("c", fmt.Sprint(i)))
	}
	expectPolled(t, e, "c", cursor, want, 100)
}

// expectPolled chains long-polls of channel from cursor, limit messages per
// answer, and fails unless they bring exactly the ids want, in order.
func expectPolled(t *testing.T, e *testEdge, channel, cursor string, want []string, limit int) {
	t.Helper()
	var got []string
	for len(got) < len(want) {
		var a pollAnswer
		getJSON(t, e.url("/v1/subscribe", "channel", channel, "since", cursor, "limit", fmt.Sprint(limit)), nil, &a)
		if len(a.Messages) == 0 || len(a.Messages) > limit {
			t.Fatalf("page of %d messages, limit %d", len(a.Messages), limit)
		}
		for _, m := range a.Messages {
			got = append(got, m.ID)
		}
		cursor = a.Cursor
	}
	if !slices.Equal(got, want) {
		t.Fatalf("polled %d ids, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
}

func TestPollResponsesAreNotCacheable(t *testing.T) {
	e := startEdge(t, transports.Config{})
	resp, err := http.Get(e.url("/v1/subscribe", "channel", "c", "timeout", "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q", cc)
	}
}

func TestPollGap(t *testing.T) {
	e := startEdgeWith(t, transports.Config{}, resume.NewMemory(resume.MemoryConfig{HistorySize: 2}))
	old := e.publish("g", "x")
	for range 3 {
		e.publish("g", "y")
	}
	var a pollAnswer
	getJSON(t, e.url("/v1/subscribe", "channel", "g", "since", old), nil, &a)
	if !a.Gap || len(a.Messages) != 2 || fmt.Sprint(a.GapIn) != "[g]" {
		t.Fatalf("%+v", a)
	}
	var next pollAnswer
	getJSON(t, e.url("/v1/subscribe", "channel", "g", "since", a.Cursor, "timeout", "0"), nil, &next)
	if next.Gap || next.GapIn != nil {
		t.Fatalf("a poll without a gap says gap: %+v", next)
	}
}

func TestPollLingerBatches(t *testing.T) {
	e := startEdge(t, transports.Config{})
	var a pollAnswer
	getJSON(t, e.url("/v1/subscribe", "channel", "b", "timeout", "0"), nil, &a)
	answer := make(chan pollAnswer, 1)
	go func() {
		var a2 pollAnswer
		getJSON(t, e.url("/v1/subscribe", "channel", "b", "since", a.Cursor, "linger", "1s"), nil, &a2)
		answer <- a2
	}()
	waitSessions(t, e, 1)
	for i := range 3 {
		e.publish("b", fmt.Sprint(i))
	}
	select {
	case a2 := <-answer:
		if len(a2.Messages) != 3 {
			t.Fatalf("lingering poll answered %d messages, want the 3 published within the linger", len(a2.Messages))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
}

func TestPollMultiChannelCursor(t *testing.T) {
	e := startEdge(t, transports.Config{})
	var a pollAnswer
	getJSON(t, e.url("/v1/subscribe", "channel", "x", "channel", "y", "timeout", "0"), nil, &a)
	x := e.publish("x", "x1")
	y := e.publish("y", "y1")
	var b pollAnswer
	getJSON(t, e.url("/v1/subscribe", "channel", "x", "channel", "y", "since", a.Cursor), nil, &b)
	if len(b.Messages) != 2 || b.Messages[0].ID != x || b.Messages[1].ID != y {
		t.Fatalf("%+v", b)
	}
	y2 := e.publish("y", "y2")
	var c pollAnswer
	getJSON(t, e.url("/v1/subscribe", "channel", "x", "channel", "y", "since", b.Cursor), nil, &c)
	if len(c.Messages) != 1 || c.Messages[0].ID != y2 {
		t.Fatalf("%+v", c)
	}
}

// The long-poll seam: a chain of polls while publishing at full speed
// sees every message exactly once.
func TestPollSeamUnderConcurrentPublishing(t *testing.T) {
	e := startEdgeWith(t, transports.Config{}, resume.NewMemory(resume.MemoryConfig{HistorySize: 100000}))
	var a pollAnswer
	getJSON(t, e.url("/v1/subscribe", "channel", "s", "timeout", "0"), nil, &a)
	const total = 3000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			e.publish("s", fmt.Sprint(i))
		}
	}()
	cursor, next := a.Cursor, 0
	for next < total {
		var p pollAnswer
		getJSON(t, e.url("/v1/subscribe", "channel", "s", "since", cursor, "limit", "37"), nil, &p)
		for _, m := range p.Messages {
			if m.Data != fmt.Sprint(next) {
				t.Fatalf("got %q, want %d", m.Data, next)
			}
			next++
		}
		cursor = p.Cursor
	}
	wg.Wait()
}

// waitSessions waits until at least n sessions are open on the hub.
func waitSessions(t *testing.T, e *testEdge, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.Hub().Sessions() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions, want %d", e.srv.Hub().Sessions(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter, not synchronisation
	}
}

// waitNoSessions waits until every session on the hub has ended.
func waitNoSessions(t *testing.T, e *testEdge) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.Hub().Sessions() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions, want none", e.srv.Hub().Sessions())
		}
		time.Sleep(5 * time.Millisecond) // polling a counter, not synchronisation
	}
}

// A long-poll waits the same way whether parked (HTTP/1: the connection
// hijacked, no goroutine) or held in its handler (HTTP/2): it answers when
// a message arrives, collects for linger= first when asked, and answers
// empty at timeout=. A held poll whose client leaves ends its session at
// once (a parked one notices at its timeout).
func TestPollWaitParkedAndHeld(t *testing.T) {
	e := startEdge(t, transports.Config{})
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	h1 := &http.Transport{}
	defer h1.CloseIdleConnections()
	clients := []struct {
		name  string
		tr    *http.Transport
		proto int
	}{
		{"parked", h1, 1},
		{"held", h2c, 2},
	}
	tests := []struct {
		name    string
		query   []string
		publish []string
		want    []string
	}{
		{name: "message", query: []string{"timeout", "30s"}, publish: []string{"one"}, want: []string{"one"}},
		{name: "linger", query: []string{"timeout", "30s", "linger", "1s"}, publish: []string{"a", "b", "c"}, want: []string{"a", "b", "c"}},
		{name: "timeout", query: []string{"timeout", "200ms"}},
	}
	for _, c := range clients {
		client := &http.Client{Transport: c.tr}
		poll := func(ctx context.Context, query ...string) (pollAnswer, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url("/v1/subscribe", query...), nil)
			resp, err := client.Do(req)
			if err != nil {
				return pollAnswer{}, err
			}
			defer resp.Body.Close()
			var a pollAnswer
			if resp.ProtoMajor != c.proto {
				return a, fmt.Errorf("served over %s", resp.Proto)
			}
			return a, json.NewDecoder(resp.Body).Decode(&a)
		}
		for _, tt := range tests {
			t.Run(c.name+"/"+tt.name, func(t *testing.T) {
				channel := c.name + "-" + tt.name
				start, err := poll(context.Background(), "channel", channel, "timeout", "0")
				if err != nil {
					t.Fatal(err)
				}
				type result struct {
					a   pollAnswer
					err error
				}
				got := make(chan result, 1)
				go func() {
					a, err := poll(context.Background(), append([]string{"channel", channel, "since", start.Cursor}, tt.query...)...)
					got <- result{a, err}
				}()
				waitSessions(t, e, 1)
				for _, m := range tt.publish {
					e.publish(channel, m)
				}
				r := <-got
				if r.err != nil {
					t.Fatal(r.err)
				}
				var data []string
				for _, m := range r.a.Messages {
					data = append(data, m.Data)
				}
				if !slices.Equal(data, tt.want) || r.a.Gap {
					t.Fatalf("answer %+v, want messages %q", r.a, tt.want)
				}
				if len(tt.want) == 0 && r.a.Cursor != start.Cursor {
					t.Fatalf("cursor %q after an empty answer, want %q", r.a.Cursor, start.Cursor)
				}
				waitNoSessions(t, e)
			})
		}
	}
	t.Run("held/client leaves", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url("/v1/subscribe", "channel", "leaves", "timeout", "60s"), nil)
			if resp, err := (&http.Client{Transport: h2c}).Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		waitSessions(t, e, 1)
		cancel()
		<-done
		waitNoSessions(t, e)
	})
}
