package resume

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
)

// fakeClock is a clock the test moves by hand. It is safe for concurrent
// use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

// t0 is the fake clock's start: the store's start floor is t0ms-0.
var t0 = time.UnixMilli(1_732_270_000_000)

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d, backwards when d is negative.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) Ms() uint64 { return uint64(c.Now().UnixMilli()) }

// newTestMemory returns a store on a fake clock frozen at t0.
func newTestMemory(t *testing.T, cfg MemoryConfig) (*Memory, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: t0}
	return newMemory(cfg.WithDefaults(), clock.Now), clock
}

var startFloor = edge.ID{Ms: uint64(t0.UnixMilli())}

func publish(t *testing.T, m *Memory, channel string, data []byte) edge.ID {
	t.Helper()
	id, err := m.Publish(context.Background(), channel, "", data)
	if err != nil {
		t.Fatalf("Publish(%q): %v", channel, err)
	}
	return id
}

func history(t *testing.T, m *Memory, channel string, after edge.ID, limit int) edge.Page {
	t.Helper()
	page, err := m.History(context.Background(), channel, after, limit)
	if err != nil {
		t.Fatalf("History(%q, %v, %d): %v", channel, after, limit, err)
	}
	return page
}

func last(t *testing.T, m *Memory, channel string) edge.ID {
	t.Helper()
	id, err := m.Last(context.Background(), channel)
	if err != nil {
		t.Fatalf("Last(%q): %v", channel, err)
	}
	return id
}

func pageIDs(p edge.Page) []edge.ID {
	ids := make([]edge.ID, len(p.Messages))
	for i, msg := range p.Messages {
		ids[i] = msg.ID
	}
	return ids
}

// checkPage fails unless page holds exactly want (in order) and its Gap is
// wantGap.
func checkPage(t *testing.T, page edge.Page, want []edge.ID, wantGap bool) {
	t.Helper()
	if got := pageIDs(page); !slices.Equal(got, want) {
		t.Errorf("messages = %v, want %v", got, want)
	}
	if page.Gap != wantGap {
		t.Errorf("Gap = %v, want %v", page.Gap, wantGap)
	}
}

var idForm = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

func TestMemoryIDs(t *testing.T) {
	tests := []struct {
		name string
		n    int
		// tick moves the clock before publish i.
		tick func(i int, c *fakeClock)
		// sameMs reports that every id must carry the clock's ms.
		sameMs bool
	}{
		{
			name:   "clock frozen: many publishes in one millisecond",
			n:      5000,
			tick:   func(int, *fakeClock) {},
			sameMs: true,
		},
		{
			name:   "clock advancing every publish",
			n:      100,
			tick:   func(_ int, c *fakeClock) { c.Advance(time.Millisecond) },
			sameMs: true,
		},
		{
			name: "clock goes backwards",
			n:    100,
			tick: func(i int, c *fakeClock) {
				switch {
				case i == 0:
					c.Advance(10 * time.Second)
				case i%10 == 0:
					c.Advance(-time.Second)
				}
			},
		},
		{
			name: "clock jitters back and forth",
			n:    200,
			tick: func(i int, c *fakeClock) {
				c.Advance([]time.Duration{0, time.Millisecond, 0, -3 * time.Millisecond, 5 * time.Millisecond}[i%5])
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, clock := newTestMemory(t, MemoryConfig{HistorySize: 10_000})
			prev := map[string]edge.ID{"a": startFloor, "b": startFloor}
			for i := range tt.n {
				tt.tick(i, clock)
				for _, ch := range []string{"a", "b"} {
					id := publish(t, m, ch, []byte("x"))
					s := id.String()
					if !idForm.MatchString(s) {
						t.Fatalf("%s: id %q is not of the form <ms>-<seq>", ch, s)
					}
					if back, err := edge.ParseID(s); err != nil || back != id {
						t.Fatalf("%s: ParseID(%q) = %v, %v; want %v", ch, s, back, err, id)
					}
					if !prev[ch].Less(id) {
						t.Fatalf("%s: publish %d got id %v, not after %v", ch, i, id, prev[ch])
					}
					if tt.sameMs && id.Ms != clock.Ms() {
						t.Fatalf("%s: publish %d got id %v, want the clock's ms %d", ch, i, id, clock.Ms())
					}
					prev[ch] = id
				}
			}
			// The ids handed out are the ids history holds.
			for _, ch := range []string{"a", "b"} {
				if got := last(t, m, ch); got != prev[ch] {
					t.Errorf("Last(%q) = %v, want %v", ch, got, prev[ch])
				}
				if page := history(t, m, ch, edge.ID{}, tt.n+1); len(page.Messages) != tt.n {
					t.Errorf("History(%q) has %d messages, want %d", ch, len(page.Messages), tt.n)
				}
			}
		})
	}
}

func TestMemoryHistory(t *testing.T) {
	m, clock := newTestMemory(t, MemoryConfig{})
	ids := make([]edge.ID, 10)
	for i := range ids {
		clock.Advance(10 * time.Millisecond)
		ids[i] = publish(t, m, "c", fmt.Appendf(nil, "m%d", i))
	}
	if ids[4] != (edge.ID{Ms: startFloor.Ms + 50}) {
		t.Fatalf("setup: ids[4] = %v, want %d-0", ids[4], startFloor.Ms+50)
	}
	tests := []struct {
		name  string
		after edge.ID
		limit int
		want  []edge.ID
	}{
		{"zero cursor", edge.ID{}, 100, ids},
		{"cursor at the start floor", startFloor, 100, ids},
		{"cursor before first", edge.ID{Ms: ids[0].Ms - 5}, 100, ids},
		{"cursor just before first", edge.ID{Ms: ids[0].Ms - 1, Seq: 1 << 40}, 100, ids},
		{"cursor equal to first", ids[0], 100, ids[1:]},
		{"cursor equal to a middle id", ids[4], 100, ids[5:]},
		{"cursor in the same ms after a middle id", edge.ID{Ms: ids[4].Ms, Seq: 1}, 100, ids[5:]},
		{"cursor between ids", edge.ID{Ms: ids[4].Ms + 5}, 100, ids[5:]},
		{"cursor just before a middle id", edge.ID{Ms: ids[4].Ms - 1, Seq: 7}, 100, ids[4:]},
		{"cursor equal to second to last", ids[8], 100, ids[9:]},
		{"cursor equal to last", ids[9], 100, nil},
		{"limit from the start", edge.ID{}, 3, ids[:3]},
		{"limit from the middle", ids[2], 2, ids[3:5]},
		{"limit of one", ids[6], 1, ids[7:8]},
		{"limit exactly the rest", ids[6], 3, ids[7:]},
		{"limit over the rest", ids[7], 100, ids[8:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := history(t, m, "c", tt.after, tt.limit)
			checkPage(t, page, tt.want, false)
			for i, msg := range page.Messages {
				if msg.Channel != "c" || !bytes.HasPrefix(msg.Data, []byte("m")) {
					t.Errorf("message %d = %+v, want channel c and its payload", i, msg)
				}
			}
		})
	}
}

// TestMemoryHistoryWrappedRing checks the binary search against a linear
// scan for every boundary cursor while the ring has wrapped around.
func TestMemoryHistoryWrappedRing(t *testing.T) {
	const size, total = 7, 19
	m, clock := newTestMemory(t, MemoryConfig{HistorySize: size})
	var all []edge.ID
	for i := range total {
		if i%3 == 0 { // some ids share a millisecond, some do not
			clock.Advance(time.Millisecond)
		}
		all = append(all, publish(t, m, "c", []byte("x")))
	}
	retained := all[total-size:]
	floor := all[total-size-1] // the newest trimmed id

	cursors := []edge.ID{{}, startFloor}
	for _, id := range all {
		cursors = append(cursors, id, edge.ID{Ms: id.Ms, Seq: id.Seq + 1}, edge.ID{Ms: id.Ms - 1, Seq: 1 << 40})
	}
	cursors = append(cursors, edge.ID{Ms: all[total-1].Ms + 1})
	for _, after := range cursors {
		for _, limit := range []int{1, 2, size - 1, size, size + 1} {
			t.Run(fmt.Sprintf("after=%v/limit=%d", after, limit), func(t *testing.T) {
				var want []edge.ID
				for _, id := range retained {
					if after.Less(id) && len(want) < limit {
						want = append(want, id)
					}
				}
				// A cursor past the newest id is ahead (see TestHistoryCursorAhead).
				wantGap := after.IsZero() || after.Less(floor) || all[total-1].Less(after)
				checkPage(t, history(t, m, "c", after, limit), want, wantGap)
			})
		}
	}
}

func TestMemoryTrimBySize(t *testing.T) {
	m, clock := newTestMemory(t, MemoryConfig{HistorySize: 5})
	var ids []edge.ID
	for range 8 {
		clock.Advance(time.Millisecond)
		ids = append(ids, publish(t, m, "c", []byte("x")))
	}
	msg := func(n int) edge.ID { return ids[n-1] } // msg(1) is the first published
	tests := []struct {
		name    string
		after   edge.ID
		want    []edge.ID
		wantGap bool
	}{
		{"0-0 after trimming", edge.ID{}, ids[3:], true},
		{"before the store started", edge.ID{Ms: 1}, ids[3:], true},
		{"at the start floor", startFloor, ids[3:], true},
		{"at msg 1 (trimmed)", msg(1), ids[3:], true},
		{"at msg 2 (trimmed)", msg(2), ids[3:], true},
		{"at msg 3 (the last trimmed)", msg(3), ids[3:], false},
		{"at msg 4 (the oldest retained)", msg(4), ids[4:], false},
		{"at msg 5", msg(5), ids[5:], false},
		{"at msg 8 (the newest)", msg(8), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkPage(t, history(t, m, "c", tt.after, 100), tt.want, tt.wantGap)
		})
	}
	if got := last(t, m, "c"); got != msg(8) {
		t.Errorf("Last = %v, want %v", got, msg(8))
	}
}

func TestMemoryTrimByTTL(t *testing.T) {
	const ttl = time.Minute
	m, clock := newTestMemory(t, MemoryConfig{HistoryTTL: ttl})
	var ids []edge.ID
	for range 3 { // msgs 1..3 at t0+1ms..t0+3ms
		clock.Advance(time.Millisecond)
		ids = append(ids, publish(t, m, "c", []byte("old")))
	}
	clock.Advance(30 * time.Second)
	for range 3 { // msgs 4..6 at t0+30.003s..
		clock.Advance(time.Millisecond)
		ids = append(ids, publish(t, m, "c", []byte("new")))
	}

	t.Run("nothing expired yet", func(t *testing.T) {
		checkPage(t, history(t, m, "c", edge.ID{}, 100), ids, false)
	})

	// At t0+3ms+ttl msg 3 is exactly ttl old: still retained.
	clock.Advance(ttl - 30*time.Second - 3*time.Millisecond)
	t.Run("a message exactly ttl old is retained", func(t *testing.T) {
		checkPage(t, history(t, m, "c", ids[1], 100), ids[2:], false)
	})

	// One ms later msgs 1..3 are all older than ttl.
	clock.Advance(time.Millisecond)
	tests := []struct {
		name    string
		after   edge.ID
		want    []edge.ID
		wantGap bool
	}{
		{"0-0", edge.ID{}, ids[3:], true},
		{"at the start floor", startFloor, ids[3:], true},
		{"at msg 1 (expired)", ids[0], ids[3:], true},
		{"at msg 2 (expired)", ids[1], ids[3:], true},
		{"at msg 3 (the last expired)", ids[2], ids[3:], false},
		{"at msg 4", ids[3], ids[4:], false},
		{"at msg 6", ids[5], nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkPage(t, history(t, m, "c", tt.after, 100), tt.want, tt.wantGap)
		})
	}

	// Once everything expired, the channel still knows where it is: a
	// subscriber that starts at Last misses nothing.
	clock.Advance(ttl)
	t.Run("all expired", func(t *testing.T) {
		checkPage(t, history(t, m, "c", ids[3], 100), nil, true)
		pos := last(t, m, "c")
		if pos != ids[5] {
			t.Fatalf("Last = %v, want %v", pos, ids[5])
		}
		later := publish(t, m, "c", []byte("later"))
		checkPage(t, history(t, m, "c", pos, 100), []edge.ID{later}, false)
	})
}

func TestMemoryHistoryMemoryBudget(t *testing.T) {
	const budget, payload = 10_000, 1000
	tests := []struct {
		name     string
		channels int
		perChan  int
	}{
		{"one channel", 1, 50},
		{"a few channels", 3, 20},
		{"many channels, one message each", 30, 1},
		{"many channels, several messages each", 30, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, clock := newTestMemory(t, MemoryConfig{HistoryMemory: budget})
			published := make(map[string][]edge.ID)
			for range tt.perChan {
				for c := range tt.channels {
					clock.Advance(time.Millisecond)
					ch := fmt.Sprintf("c%d", c)
					published[ch] = append(published[ch], publish(t, m, ch, make([]byte, payload)))
				}
			}
			var retained int64
			for ch, ids := range published {
				page := history(t, m, ch, edge.ID{}, len(ids)+1)
				for _, msg := range page.Messages {
					retained += int64(len(msg.Data))
				}
				// What is kept is the newest messages, contiguous.
				n := len(page.Messages)
				if got, want := pageIDs(page), ids[len(ids)-n:]; !slices.Equal(got, want) {
					t.Errorf("%s retains %v, want the newest %d of %v", ch, got, n, ids)
				}
				if n < len(ids) {
					// Trimmed: a resume from before the first message or
					// from a trimmed one is told so.
					if !page.Gap {
						t.Errorf("%s: History(0-0) after trimming: Gap = false, want true", ch)
					}
					if p := history(t, m, ch, startFloor, 1); !p.Gap {
						t.Errorf("%s: History(start floor) after trimming: Gap = false, want true", ch)
					}
					if n < len(ids)-1 {
						if p := history(t, m, ch, ids[0], 1); !p.Gap {
							t.Errorf("%s: History(first id) after trimming two: Gap = false, want true", ch)
						}
					}
				} else if page.Gap {
					t.Errorf("%s: History(0-0) without trimming: Gap = true, want false", ch)
				}
			}
			if retained > budget {
				t.Errorf("retained %d payload bytes over %d channels, over the HistoryMemory budget of %d", retained, tt.channels, budget)
			}
			if got := m.bytes.Load(); got != retained {
				t.Errorf("store accounts %d bytes, history holds %d", got, retained)
			}
		})
	}
}

func TestMemoryGapFloors(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, m *Memory, clock *fakeClock)
	}{
		{"an unknown channel's Last is the start floor", func(t *testing.T, m *Memory, _ *fakeClock) {
			publish(t, m, "other", []byte("x"))
			if got := last(t, m, "never"); got != startFloor {
				t.Errorf("Last = %v, want the start floor %v", got, startFloor)
			}
		}},
		{"a cursor older than the store on an unknown channel", func(t *testing.T, m *Memory, _ *fakeClock) {
			checkPage(t, history(t, m, "never", edge.ID{Ms: startFloor.Ms - 1000, Seq: 4}, 10), nil, true)
			checkPage(t, history(t, m, "never", edge.ID{Ms: startFloor.Ms - 1, Seq: 1 << 40}, 10), nil, true)
		}},
		{"a cursor older than the store on a known channel", func(t *testing.T, m *Memory, _ *fakeClock) {
			id := publish(t, m, "c", []byte("x"))
			checkPage(t, history(t, m, "c", edge.ID{Ms: startFloor.Ms - 1}, 10), []edge.ID{id}, true)
		}},
		{"the start floor on an unknown channel", func(t *testing.T, m *Memory, _ *fakeClock) {
			checkPage(t, history(t, m, "never", startFloor, 10), nil, false)
		}},
		{"0-0 on an unknown channel", func(t *testing.T, m *Memory, _ *fakeClock) {
			checkPage(t, history(t, m, "never", edge.ID{}, 10), nil, false)
		}},
		{"0-0 on an untrimmed channel", func(t *testing.T, m *Memory, clock *fakeClock) {
			var ids []edge.ID
			for range 3 {
				clock.Advance(time.Millisecond)
				ids = append(ids, publish(t, m, "c", []byte("x")))
			}
			checkPage(t, history(t, m, "c", edge.ID{}, 10), ids, false)
		}},
		{"resume from Last of an empty channel, same millisecond", func(t *testing.T, m *Memory, _ *fakeClock) {
			pos := last(t, m, "c")
			var ids []edge.ID
			for range 3 {
				ids = append(ids, publish(t, m, "c", []byte("x")))
			}
			checkPage(t, history(t, m, "c", pos, 10), ids, false)
		}},
		{"resume from Last of an empty channel, later", func(t *testing.T, m *Memory, clock *fakeClock) {
			pos := last(t, m, "c")
			clock.Advance(time.Hour / 2)
			var ids []edge.ID
			for range 3 {
				clock.Advance(time.Millisecond)
				ids = append(ids, publish(t, m, "c", []byte("x")))
			}
			checkPage(t, history(t, m, "c", pos, 10), ids, false)
		}},
		{"resume from Last of a channel whose clock went backwards", func(t *testing.T, m *Memory, clock *fakeClock) {
			clock.Advance(time.Second)
			publish(t, m, "c", []byte("x"))
			pos := last(t, m, "c")
			clock.Advance(-time.Minute)
			var ids []edge.ID
			for range 3 {
				ids = append(ids, publish(t, m, "c", []byte("x")))
			}
			checkPage(t, history(t, m, "c", pos, 10), ids, false)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, clock := newTestMemory(t, MemoryConfig{})
			tt.run(t, m, clock)
		})
	}
}

func TestMemorySweep(t *testing.T) {
	const ttl = time.Minute
	t.Run("drops an idle empty channel; old cursors get a gap after it returns", func(t *testing.T) {
		m, clock := newTestMemory(t, MemoryConfig{HistoryTTL: ttl})
		var old []edge.ID
		for range 3 {
			clock.Advance(time.Millisecond)
			old = append(old, publish(t, m, "c", []byte("x")))
		}
		clock.Advance(2 * ttl)
		m.sweep()
		if m.channel("c", false) != nil {
			t.Fatal("sweep kept an idle channel that retains nothing")
		}
		// While gone, cursors before its newest message learn of the loss.
		checkPage(t, history(t, m, "c", old[0], 10), nil, true)
		checkPage(t, history(t, m, "c", startFloor, 10), nil, true)
		if got := last(t, m, "c"); got.Less(old[2]) {
			t.Errorf("Last after the sweep = %v, before the channel's newest id %v", got, old[2])
		}

		// The channel comes back, even with the clock behind its old ids.
		clock.Advance(-3 * ttl)
		var fresh []edge.ID
		for range 2 {
			fresh = append(fresh, publish(t, m, "c", []byte("y")))
		}
		if !old[2].Less(fresh[0]) || !fresh[0].Less(fresh[1]) {
			t.Fatalf("ids after recreation %v are not after the old ones %v", fresh, old)
		}
		tests := []struct {
			name    string
			after   edge.ID
			wantGap bool
		}{
			{"cursor at the first old message", old[0], true},
			{"cursor at the second old message", old[1], true},
			{"cursor at the start floor", startFloor, true},
			{"cursor at the newest old message", old[2], false}, // it missed nothing
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				checkPage(t, history(t, m, "c", tt.after, 10), fresh, tt.wantGap)
			})
		}
	})
	t.Run("keeps a channel that retains messages", func(t *testing.T) {
		m, clock := newTestMemory(t, MemoryConfig{HistoryTTL: ttl})
		clock.Advance(time.Millisecond)
		a := publish(t, m, "c", []byte("a"))
		clock.Advance(ttl / 2)
		b := publish(t, m, "c", []byte("b"))
		clock.Advance(ttl/2 + time.Millisecond) // a expires, b does not
		m.sweep()
		if m.channel("c", false) == nil {
			t.Fatal("sweep dropped a channel that retains a message")
		}
		checkPage(t, history(t, m, "c", a, 10), []edge.ID{b}, false)
		checkPage(t, history(t, m, "c", edge.ID{}, 10), []edge.ID{b}, true)
	})
	t.Run("keeps a channel published within the ttl", func(t *testing.T) {
		m, clock := newTestMemory(t, MemoryConfig{HistoryTTL: ttl})
		clock.Advance(time.Millisecond)
		a := publish(t, m, "c", []byte("a"))
		clock.Advance(ttl / 2)
		m.sweep()
		checkPage(t, history(t, m, "c", startFloor, 10), []edge.ID{a}, false)
	})
}

func TestMemoryRelay(t *testing.T) {
	t.Run("every message in id order", func(t *testing.T) {
		m, clock := newTestMemory(t, MemoryConfig{})
		var got []edge.Message
		m.Relay(func(_ context.Context, msg edge.Message) { got = append(got, msg) })
		var want []edge.ID
		for i := range 100 {
			if i%7 == 0 {
				clock.Advance(time.Millisecond)
			}
			want = append(want, publish(t, m, "c", []byte{byte(i)}))
		}
		if len(got) != len(want) {
			t.Fatalf("delivered %d messages, want %d", len(got), len(want))
		}
		for i, msg := range got {
			if msg.ID != want[i] || msg.Channel != "c" || !bytes.Equal(msg.Data, []byte{byte(i)}) {
				t.Fatalf("delivery %d = %+v, want id %v on c with payload %d", i, msg, want[i], i)
			}
		}
	})
	t.Run("concurrent publishers on one channel", func(t *testing.T) {
		const publishers, each = 8, 500
		m := NewMemory(MemoryConfig{HistorySize: publishers * each}.WithDefaults())
		var mu sync.Mutex
		var delivered []edge.ID
		m.Relay(func(_ context.Context, msg edge.Message) {
			mu.Lock()
			delivered = append(delivered, msg.ID)
			mu.Unlock()
		})
		returned := make([][]edge.ID, publishers)
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				for range each {
					id, err := m.Publish(context.Background(), "c", "", []byte("x"))
					if err != nil {
						t.Errorf("Publish: %v", err)
						return
					}
					returned[p] = append(returned[p], id)
				}
			})
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(delivered) != publishers*each {
			t.Fatalf("delivered %d messages, want %d", len(delivered), publishers*each)
		}
		for i := 1; i < len(delivered); i++ {
			if !delivered[i-1].Less(delivered[i]) {
				t.Fatalf("delivery %d has id %v, not after %v", i, delivered[i], delivered[i-1])
			}
		}
		all := slices.Concat(returned...)
		slices.SortFunc(all, edge.ID.Compare)
		if !slices.Equal(all, delivered) {
			t.Error("the delivered ids are not the ids Publish returned")
		}
		if page := history(t, m, "c", edge.ID{}, 2*publishers*each); !slices.Equal(pageIDs(page), delivered) {
			t.Error("history does not hold exactly the delivered messages")
		}
	})
}

func TestMemoryPublishCopiesPayload(t *testing.T) {
	m, _ := newTestMemory(t, MemoryConfig{})
	var relayed edge.Message
	m.Relay(func(_ context.Context, msg edge.Message) { relayed = msg })
	buf := []byte("hello")
	publish(t, m, "c", buf)
	copy(buf, "XXXXX")
	page := history(t, m, "c", edge.ID{}, 10)
	if len(page.Messages) != 1 || string(page.Messages[0].Data) != "hello" {
		t.Errorf("history holds %q after the caller reused its buffer, want %q", page.Messages, "hello")
	}
	if string(relayed.Data) != "hello" {
		t.Errorf("relayed payload = %q after the caller reused its buffer, want %q", relayed.Data, "hello")
	}
}
