package edge_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
)

func TestParseConflate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "50ms", want: 50 * time.Millisecond},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "1s", want: time.Second},
		{in: "1m", want: time.Minute},
		{in: "", bad: true},
		{in: "1", bad: true},
		{in: "fast", bad: true},
		{in: "-1s", bad: true},
		{in: "49ms", bad: true},
		{in: "61s", bad: true},
		{in: "9999999999999h", bad: true},
		{in: "1s ", bad: true},
		{in: strings.Repeat("9", 500), bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := edge.ParseConflate(tc.in)
			if tc.bad {
				if !errors.Is(err, edge.ErrBadRequest) {
					t.Fatalf("ParseConflate(%q) = %v, %v; want ErrBadRequest", tc.in, got, err)
				}
				if len(err.Error()) > 300 {
					t.Fatalf("error of %d bytes echoes the input: %v", len(err.Error()), err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseConflate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

// fakeClock makes conflation timers that fire only when a test ticks
// them.
type fakeClock struct {
	mu     sync.Mutex
	timers []*fakeTimer
	due    []func() // reused by tick
}

type fakeTimer struct {
	clock *fakeClock
	f     func()
	armed bool
}

func (c *fakeClock) AfterFunc(_ time.Duration, f func()) edge.WindowTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, f: f, armed: true}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Reset(time.Duration) bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.armed
	t.armed = true
	return was
}

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.armed
	t.armed = false
	return was
}

// tick fires every armed timer, as the window's duration passing does.
func (c *fakeClock) tick() {
	c.mu.Lock()
	due := c.due[:0]
	for _, t := range c.timers {
		if t.armed {
			t.armed = false
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
	clear(due)
	c.mu.Lock()
	c.due = due
	c.mu.Unlock()
}

// armed returns how many timers are armed, and how many were made.
func (c *fakeClock) armed() (armed, made int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if t.armed {
			armed++
		}
	}
	return armed, len(c.timers)
}

// conflateHub returns a hub whose conflation windows run on a fake clock,
// and a live session on channel "c" that conflates with a 1 s window.
func conflateHub(t *testing.T, cfg edge.Config) (*edge.Hub, *testBroker, *fakeClock, *edge.Session) {
	t.Helper()
	h, b := newHub(t, cfg)
	clock := &fakeClock{}
	edge.SetConflateClock(h, clock.AfterFunc)
	s := newSession(t, h)
	s.SetConflate(time.Second)
	joinLive(t, s, "c")
	return h, b, clock, s
}

// relayer relays messages of channel "c" with increasing ids above every
// stored one, named key#n.
type relayer struct {
	b    *testBroker
	base uint64
	n    uint64
}

func newRelayer(b *testBroker) *relayer {
	return &relayer{b: b, base: uint64(time.Now().Add(time.Hour).UnixMilli())}
}

func (r *relayer) send(key string) {
	r.n++
	r.b.relay(context.Background(), edge.Message{
		Channel: "c", ID: edge.ID{Ms: r.base, Seq: r.n}, Key: key,
		Data: fmt.Appendf(nil, "%s#%d", key, r.n),
	})
}

// names returns the data of frames.
func names(frames []*edge.Frame) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = string(f.Data)
	}
	return out
}

// TestConflateWindow drives a conflating subscription's window by hand:
// each step relays messages of the given keys ("" is the channel's key)
// or ticks the clock, then takes the queue.
func TestConflateWindow(t *testing.T) {
	type step struct {
		send []string // keys of the messages relayed
		tick bool     // the window's time passes
		want []string // what the session then has queued
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"first at once, then newest per key in id order", []step{
			{send: []string{"a"}, want: []string{"a#1"}},
			{send: []string{"a", "b", "a"}, want: []string{}},
			{tick: true, want: []string{"b#3", "a#4"}},
			{tick: true, want: []string{}},
			{send: []string{"a"}, want: []string{"a#5"}},
		}},
		{"a flush opens the next window", []step{
			{send: []string{"a"}, want: []string{"a#1"}},
			{send: []string{"a"}, want: []string{}},
			{tick: true, want: []string{"a#2"}},
			{send: []string{"a", "a"}, want: []string{}},
			{tick: true, want: []string{"a#4"}},
			{tick: true, want: []string{}},
			{tick: true, want: []string{}},
			{send: []string{"a"}, want: []string{"a#5"}},
		}},
		{"no key is the channel's key", []step{
			{send: []string{""}, want: []string{"#1"}},
			{send: []string{"", "", "x", ""}, want: []string{}},
			{tick: true, want: []string{"x#4", "#5"}},
		}},
		{"a replaced key moves behind the others", []step{
			{send: []string{"a"}, want: []string{"a#1"}},
			{send: []string{"a", "b", "c", "a"}, want: []string{}},
			{tick: true, want: []string{"b#3", "c#4", "a#5"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, b, clock, s := conflateHub(t, edge.Config{})
			r := newRelayer(b)
			for i, st := range tc.steps {
				for _, k := range st.send {
					r.send(k)
				}
				if st.tick {
					clock.tick()
				}
				if got := names(s.Take(nil)); !slices.Equal(got, st.want) {
					t.Fatalf("step %d: queued %q, want %q", i, got, st.want)
				}
			}
			if armed, made := clock.armed(); made > 1 {
				t.Fatalf("%d timers made (%d armed); want one per subscription", made, armed)
			}
		})
	}
}

// TestConflateKeysBound checks that a window holds at most
// MaxConflateKeys keys: one more flushes the held ones at once.
func TestConflateKeysBound(t *testing.T) {
	_, b, clock, s := conflateHub(t, edge.Config{QueueBytes: 16 << 20})
	r := newRelayer(b)
	r.send("first")
	s.Take(nil)
	var want []string
	for i := range edge.MaxConflateKeys {
		k := fmt.Sprintf("k%d", i)
		r.send(k)
		want = append(want, fmt.Sprintf("%s#%d", k, r.n))
	}
	if got := s.Take(nil); len(got) != 0 {
		t.Fatalf("%d frames queued within the key bound", len(got))
	}
	r.send("one-more")
	if got := names(s.Take(nil)); !slices.Equal(got, want) {
		t.Fatalf("a key beyond the bound queued %d frames, want the %d held", len(got), len(want))
	}
	clock.tick()
	if got, want := names(s.Take(nil)), []string{fmt.Sprintf("one-more#%d", r.n)}; !slices.Equal(got, want) {
		t.Fatalf("window end queued %q, want %q", got, want)
	}
}

// TestConflateBudget checks that held messages count against QueueBytes:
// a subscriber whose held and queued bytes exceed it is a slow consumer.
func TestConflateBudget(t *testing.T) {
	const queue = 8 << 10
	_, b, _, s := conflateHub(t, edge.Config{QueueBytes: queue})
	r := newRelayer(b)
	r.send("first")
	size := edge.NewFrame(edge.Message{Channel: "c", Key: "k000", Data: []byte("k000#0000")}).Size()
	fits := queue/size - 1 // the first frame is still queued
	for i := range fits {
		r.send(fmt.Sprintf("k%03d", i))
	}
	if _, closed := s.Closed(); closed {
		t.Fatalf("closed with %d frames held, within QueueBytes", fits)
	}
	for i := range fits {
		r.send(fmt.Sprintf("k%03d", i)) // replacing a held key costs nothing more
	}
	if _, closed := s.Closed(); closed {
		t.Fatal("closed when held keys were replaced")
	}
	r.send("k-over")
	if d, closed := s.Closed(); !closed || d != edge.DisconnectSlow {
		t.Fatalf("Closed() = %v, %v after exceeding QueueBytes with held frames; want DisconnectSlow", d, closed)
	}
}

// TestConflateStops checks that a subscription's window timer is stopped
// when it ends, and that a timer firing late does nothing.
func TestConflateStops(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(*edge.Session)
	}{
		{"unsubscribe", func(s *edge.Session) { s.Unsubscribe("c") }},
		{"close", func(s *edge.Session) { s.Close(edge.DisconnectShutdown) }},
		{"release", func(s *edge.Session) { s.Release() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, b, clock, s := conflateHub(t, edge.Config{})
			r := newRelayer(b)
			r.send("a")
			r.send("a")
			tc.end(s)
			if armed, made := clock.armed(); armed != 0 || made != 1 {
				t.Fatalf("%d of %d timers armed after %s; want 0 of 1", armed, made, tc.name)
			}
			clock.timers[0].f() // a timer that fired as it was stopped
			if got := s.Take(nil); len(got) != 0 {
				t.Fatalf("%d frames queued after %s", len(got), tc.name)
			}
		})
	}
}

// TestConflateRealTimer runs a window on the real clock and ends the
// session with a window open (the package's goleak check sees any
// goroutine left behind).
func TestConflateRealTimer(t *testing.T) {
	h, b := newHub(t, edge.Config{})
	s := newSession(t, h)
	s.SetConflate(edge.MinConflate)
	joinLive(t, s, "c")
	r := newRelayer(b)
	r.send("a")
	r.send("a")
	r.send("a")
	var got []string
	deadline := time.Now().Add(waitFor)
	for len(got) < 2 && time.Now().Before(deadline) {
		select {
		case <-s.Notify():
		case <-time.After(waitFor):
		}
		got = append(got, names(s.Take(nil))...)
	}
	if want := []string{"a#1", "a#3"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	r.send("a")
	s.Release()
}

// TestConflateJoinBuffer checks that what a conflating channel buffered
// while it caught up goes through its window at GoLive.
func TestConflateJoinBuffer(t *testing.T) {
	h, b := newHub(t, edge.Config{})
	clock := &fakeClock{}
	edge.SetConflateClock(h, clock.AfterFunc)
	s := newSession(t, h)
	s.SetConflate(time.Second)
	ctx := context.Background()
	j, err := s.Start(ctx, "c", nil)
	if err != nil {
		t.Fatal(err)
	}
	if j.Conflate() != time.Second || s.Conflating("c") != time.Second {
		t.Fatalf("Joining.Conflate() = %v, Conflating = %v; want 1s", j.Conflate(), s.Conflating("c"))
	}
	r := newRelayer(b)
	for _, k := range []string{"a", "b", "a", "b"} {
		r.send(k)
	}
	if _, err := s.Finish(ctx, j, func(edge.Page) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got, want := names(s.Take(nil)), []string{"a#1"}; !slices.Equal(got, want) {
		t.Fatalf("at GoLive queued %q, want %q", got, want)
	}
	clock.tick()
	if got, want := names(s.Take(nil)), []string{"a#3", "b#4"}; !slices.Equal(got, want) {
		t.Fatalf("window end queued %q, want %q", got, want)
	}
}

func TestConflatePage(t *testing.T) {
	msg := func(ch, key string, seq uint64) edge.Message {
		return edge.Message{Channel: ch, Key: key, ID: edge.ID{Ms: 1, Seq: seq}}
	}
	for _, tc := range []struct {
		name string
		in   []edge.Message
		want []uint64 // the seqs kept
	}{
		{"empty", nil, nil},
		{"one", []edge.Message{msg("c", "", 1)}, []uint64{1}},
		{"no key", []edge.Message{msg("c", "", 1), msg("c", "", 2), msg("c", "", 3)}, []uint64{3}},
		{"keys", []edge.Message{msg("c", "a", 1), msg("c", "b", 2), msg("c", "a", 3), msg("c", "", 4), msg("c", "b", 5)}, []uint64{3, 4, 5}},
		{"distinct", []edge.Message{msg("c", "a", 1), msg("c", "b", 2)}, []uint64{1, 2}},
		{"channels", []edge.Message{msg("c", "a", 1), msg("d", "a", 2), msg("c", "a", 3)}, []uint64{2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			p := edge.ConflatePage(edge.Page{Messages: in, Gap: true})
			var got []uint64
			for _, m := range p.Messages {
				got = append(got, m.ID.Seq)
			}
			if !slices.Equal(got, tc.want) || !p.Gap {
				t.Fatalf("kept %v (gap %v), want %v (gap true)", got, p.Gap, tc.want)
			}
			if !slices.EqualFunc(in, tc.in, func(a, b edge.Message) bool { return a.ID == b.ID }) {
				t.Fatal("ConflatePage modified its page")
			}
			frames := make([]*edge.Frame, len(in))
			for i, m := range in {
				frames[i] = edge.NewFrame(m)
			}
			got = got[:0]
			for _, f := range edge.ConflateFrames(frames) {
				got = append(got, f.ID.Seq)
			}
			if !slices.Equal(got, tc.want) && len(tc.want) > 0 {
				t.Fatalf("ConflateFrames kept %v, want %v", got, tc.want)
			}
		})
	}
}

func FuzzParseConflate(f *testing.F) {
	for _, s := range []string{"0", "1s", "500ms", "50ms", "60s", "-1s", "1", "", "1e9h", "1.5s", "0.05s", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := edge.ParseConflate(s)
		if err != nil {
			if !errors.Is(err, edge.ErrBadRequest) || d != 0 || len(err.Error()) > 400 { // 64 bytes of input, quoted
				t.Fatalf("ParseConflate(%q) = %v, %v", s, d, err)
			}
			return
		}
		if d != 0 && (d < edge.MinConflate || d > edge.MaxConflate) {
			t.Fatalf("ParseConflate(%q) = %v, out of bounds", s, d)
		}
	})
}
