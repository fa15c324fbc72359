package edge_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/centrifugal/fdelta"

	"github.com/edgeworks/edge/edge"
)

// deltaClient plays a client that applies deltas: it keeps the last
// payload of each key and checks every frame against history.
type deltaClient struct {
	t      testing.TB
	held   map[string]edge.Message // key → the last message taken
	deltas int
	fulls  []edge.ID // the ids that came in full
}

func newDeltaClient(t testing.TB) *deltaClient {
	return &deltaClient{t: t, held: make(map[string]edge.Message)}
}

// take applies f and returns the payload the client hands on.
func (c *deltaClient) take(f *edge.Frame) []byte {
	c.t.Helper()
	data := f.Data
	if base, ok := f.Base(); ok {
		prev, held := c.held[f.Key]
		if !held || prev.ID != base {
			c.t.Fatalf("message %v is a delta against %v, but the client holds %v of key %q", f.ID, base, prev.ID, f.Key)
		}
		var err error
		if data, err = fdelta.Apply(prev.Data, f.Data); err != nil {
			c.t.Fatalf("message %v: Apply: %v", f.ID, err)
		}
		c.deltas++
	} else {
		c.fulls = append(c.fulls, f.ID)
	}
	c.held[f.Key] = edge.Message{ID: f.ID, Data: data}
	return data
}

// drainDelta takes n frames from s and checks each payload against want.
func drainDelta(t *testing.T, s *edge.Session, c *deltaClient, want map[edge.ID][]byte, n int) {
	t.Helper()
	var got int
	for got < n {
		select {
		case <-s.Notify():
		case <-deadline(t):
			t.Fatalf("%d of %d frames arrived", got, n)
		}
		for _, f := range s.Take(nil) {
			if p := c.take(f); !bytes.Equal(p, want[f.ID]) {
				t.Fatalf("message %v: payload %q; want %q", f.ID, p, want[f.ID])
			}
			got++
		}
	}
}

func deadline(t *testing.T) <-chan struct{} {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx.Done()
}

// TestSessionDelta checks, through the hub, that a delta session gets
// patches that rebuild history's payloads byte for byte, full messages
// where its client cannot hold the base, and that a plain session beside
// it gets every message in full.
func TestSessionDelta(t *testing.T) {
	for _, tc := range []struct {
		name       string
		n          int
		resumeFrom int // >0: resume from the cursor of message resumeFrom-1 after n/2 messages
		wantFull   []int
	}{
		{"live", 2*edge.DeltaResync + 1, 0, []int{0, edge.DeltaResync, 2 * edge.DeltaResync}},
		{"a resume's history is full, then deltas against it", 10, 3, []int{3, 4}},
		{"after a resume at the head the first is full", 10, 5, []int{5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, b := newHub(t, edge.Config{})
			want := make(map[edge.ID][]byte)
			ids := make([]edge.ID, 0, tc.n)
			pub := func(i int) {
				p := edge.DashboardState(i)
				id, err := b.Publish(context.Background(), "dash", "", p)
				if err != nil {
					t.Fatal(err)
				}
				want[id] = p
				ids = append(ids, id)
			}
			s := newSession(t, h)
			s.SetDelta(true)
			plain := newSession(t, h)
			joinLive(t, s, "dash")
			joinLive(t, plain, "dash")
			c := newDeltaClient(t)
			if tc.resumeFrom == 0 {
				for i := range tc.n {
					pub(i)
				}
				drainDelta(t, s, c, want, tc.n)
			} else {
				half := tc.n / 2
				for i := range half {
					pub(i)
				}
				drainDelta(t, s, c, want, half)
				// A new session resumes from the cursor before message
				// resumeFrom: history is full, and so is the first live
				// message after it.
				s.Release()
				s = newSession(t, h)
				s.SetDelta(true)
				c.fulls = c.fulls[:0]
				since := ids[tc.resumeFrom-1]
				j, err := s.Start(context.Background(), "dash", &since)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Finish(context.Background(), j, func(p edge.Page) error {
					for _, m := range p.Messages {
						c.take(edge.NewFrame(m))
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				for i := half; i < tc.n; i++ {
					pub(i)
				}
				drainDelta(t, s, c, want, tc.n-half)
			}
			var full []int
			for _, id := range c.fulls {
				full = append(full, indexOf(ids, id))
			}
			if fmt.Sprint(full) != fmt.Sprint(tc.wantFull) {
				t.Errorf("full messages %v; want %v", full, tc.wantFull)
			}
			if c.deltas == 0 {
				t.Error("no delta was sent")
			}
			for _, f := range plain.Take(nil) {
				if _, ok := f.Base(); ok || !bytes.Equal(f.Data, want[f.ID]) {
					t.Fatalf("the plain session got %v as a delta or with a wrong payload", f.ID)
				}
			}
		})
	}
}

func indexOf(ids []edge.ID, id edge.ID) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	return -1
}

// TestSessionDeltaKeys relays keyed messages, a and b interleaved: each
// is a patch against the previous message of its own key, and one patch
// is shared by every session.
func TestSessionDeltaKeys(t *testing.T) {
	h, b := newHub(t, edge.Config{})
	sessions := []*edge.Session{newSession(t, h), newSession(t, h)}
	clients := []*deltaClient{newDeltaClient(t), newDeltaClient(t)}
	for _, s := range sessions {
		s.SetDelta(true)
		joinLive(t, s, "dash")
	}
	want := make(map[edge.ID][]byte)
	const n = 20
	for i := range n {
		key := []string{"a", "b"}[i%2]
		m := edge.Message{Channel: "dash", ID: edge.ID{Ms: 1 << 42, Seq: uint64(i)}, Key: key, Data: edge.DashboardState(i / 2)}
		if key == "b" {
			m.Data = bytes.ToUpper(m.Data)
		}
		want[m.ID] = m.Data
		b.relay(context.Background(), m)
	}
	var views [2][]*edge.Frame
	for i, s := range sessions {
		views[i] = s.Take(nil)
		if len(views[i]) != n {
			t.Fatalf("session %d: %d frames; want %d", i, len(views[i]), n)
		}
		for _, f := range views[i] {
			if p := clients[i].take(f); !bytes.Equal(p, want[f.ID]) {
				t.Fatalf("message %v: payload %q; want %q", f.ID, p, want[f.ID])
			}
		}
		if got := clients[i].deltas; got != n-2 {
			t.Errorf("session %d: %d deltas; want %d (all but the first of each key)", i, got, n-2)
		}
	}
	for i := range views[0] {
		if _, ok := views[0][i].Base(); ok && views[0][i] != views[1][i] {
			t.Fatalf("message %v: each session got a patch of its own", views[0][i].ID)
		}
	}
}

// TestDeltaLinger plays long-polls, each a new session that trusts its
// cursor: the channel's delta state outlives the last delta subscriber
// for the linger, still relayed, so the next poll gets a patch against a
// message published between polls; once the linger ends the state and
// its Watch are gone.
func TestDeltaLinger(t *testing.T) {
	h, b := newHub(t, edge.Config{})
	edge.SetDeltaLinger(h, 200*time.Millisecond)
	poll := func(since edge.ID) *edge.Session {
		s := newSession(t, h)
		s.SetDelta(true)
		if err := s.Subscribe(context.Background(), "dash"); err != nil {
			t.Fatal(err)
		}
		s.TrustDelta("dash", since)
		return s
	}
	first := publish(t, b, "dash", string(edge.DashboardState(0)))
	s := poll(first)
	s.Release()
	between := publish(t, b, "dash", string(edge.DashboardState(1))) // no subscriber: the lingering state sees it
	s = poll(between)
	next := publish(t, b, "dash", string(edge.DashboardState(2)))
	frames, _ := s.Buffered("dash", between)
	if len(frames) != 1 || frames[0].ID != next {
		t.Fatalf("buffered %v; want %v", frames, next)
	}
	out := s.Out(frames[0])
	if base, ok := out.Base(); !ok || base != between {
		t.Fatalf("the poll after the linger's message got base %v, %v; want a delta against %v", base, ok, between)
	}
	if p, err := fdelta.Apply(edge.DashboardState(1), out.Data); err != nil || !bytes.Equal(p, edge.DashboardState(2)) {
		t.Fatalf("Apply = %q, %v", p, err)
	}
	s.Release()
	// A message published between polls comes from history: the next
	// poll gets the frame the hub relayed, a delta.
	after := publish(t, b, "dash", string(edge.DashboardState(3)))
	page, err := b.History(context.Background(), "dash", next, 10)
	if err != nil || len(page.Messages) != 1 {
		t.Fatalf("History: %v, %v", page, err)
	}
	s = poll(next)
	if out := s.Out(h.Frame(page.Messages[0])); out.ID != after {
		t.Fatalf("Out(Frame) is %v; want %v", out.ID, after)
	} else if base, ok := out.Base(); !ok || base != next {
		t.Fatalf("a message from history has base %v, %v; want a delta against %v", base, ok, next)
	}
	s.Release()
	tick := time.NewTicker(5 * time.Millisecond) // the linger's end tells no one
	defer tick.Stop()
	for deadline := time.Now().Add(waitFor); b.Watched("dash"); <-tick.C {
		if time.Now().After(deadline) {
			t.Fatal("the lingering state still watches the channel")
		}
	}
	third := publish(t, b, "dash", string(edge.DashboardState(4)))
	s = poll(third)
	publish(t, b, "dash", string(edge.DashboardState(5)))
	frames, _ = s.Buffered("dash", third)
	if len(frames) != 1 {
		t.Fatalf("buffered %d frames; want 1", len(frames))
	}
	if _, ok := s.Out(frames[0]).Base(); ok {
		t.Fatal("a delta after the state was dropped")
	}
}

// TestDeltaLingerEndsAtShutdown: Shutdown drops the delta states that
// outlive their subscribers, and the Watch each held.
func TestDeltaLingerEndsAtShutdown(t *testing.T) {
	h, b := newHub(t, edge.Config{})
	s := newSession(t, h)
	s.SetDelta(true)
	joinLive(t, s, "dash")
	s.Release()
	if !b.Watched("dash") {
		t.Fatal("the lingering state does not watch the channel")
	}
	h.Shutdown(context.Background(), 0)
	if b.Watched("dash") {
		t.Fatal("the lingering state still watches the channel after Shutdown")
	}
}
