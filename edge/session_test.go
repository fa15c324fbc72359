package edge_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
)

// waitFor bounds every wait in these tests.
const waitFor = 5 * time.Second

// testBroker is the embedded store with failures that a test injects and a
// record of Watch and Unwatch.
type testBroker struct {
	*resume.Memory
	historyErr error // returned by History when set
	lastErr    error // returned by Last when set

	relay func(context.Context, edge.Message) // what the hub gave Relay

	mu      sync.Mutex
	watched map[string]int // channel → Watch calls minus Unwatch calls
}

func (b *testBroker) Relay(deliver func(context.Context, edge.Message)) {
	b.relay = deliver
	b.Memory.Relay(deliver)
}

func (b *testBroker) History(ctx context.Context, channel string, after edge.ID, limit int) (edge.Page, error) {
	if b.historyErr != nil {
		return edge.Page{}, b.historyErr
	}
	return b.Memory.History(ctx, channel, after, limit)
}

func (b *testBroker) Last(ctx context.Context, channel string) (edge.ID, error) {
	if b.lastErr != nil {
		return edge.ID{}, b.lastErr
	}
	return b.Memory.Last(ctx, channel)
}

func (b *testBroker) Watch(_ context.Context, channel string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.watched[channel]++
	return nil
}

func (b *testBroker) Unwatch(channel string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.watched[channel]--
}

// Watched reports whether the hub told the broker that channel has local
// subscribers.
func (b *testBroker) Watched(channel string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.watched[channel] > 0
}

// newHub returns a hub over a fresh embedded store.
func newHub(t testing.TB, cfg edge.Config) (*edge.Hub, *testBroker) {
	t.Helper()
	return newHubWithHistory(t, cfg, 0)
}

// newHubWithHistory is newHub over a store whose channels retain
// historySize messages (zero: the default).
func newHubWithHistory(t testing.TB, cfg edge.Config, historySize int) (*edge.Hub, *testBroker) {
	t.Helper()
	b := &testBroker{Memory: resume.NewMemory(resume.MemoryConfig{HistorySize: historySize}), watched: make(map[string]int)}
	return edge.NewHub(b, cfg, slog.New(slog.DiscardHandler)), b
}

// newSession opens a session that is released when the test ends.
func newSession(t testing.TB, h *edge.Hub) *edge.Session {
	t.Helper()
	s, err := h.NewSession()
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	t.Cleanup(s.Release)
	return s
}

func publish(t testing.TB, b edge.Broker, channel string, data string) edge.ID {
	t.Helper()
	id, err := b.Publish(context.Background(), channel, "", []byte(data))
	if err != nil {
		t.Fatalf("Publish(%q): %v", channel, err)
	}
	return id
}

func publishN(t testing.TB, b edge.Broker, channel string, n int) []edge.ID {
	t.Helper()
	ids := make([]edge.ID, n)
	for i := range ids {
		ids[i] = publish(t, b, channel, fmt.Sprintf("%s#%d", channel, i))
	}
	return ids
}

// joinLive joins channel without a cursor; it must not read history.
func joinLive(t testing.TB, s *edge.Session, channel string) edge.ID {
	t.Helper()
	pos, err := s.Join(context.Background(), channel, nil, func(p edge.Page) error {
		t.Errorf("Join(%q) without a cursor emitted history %v", channel, p)
		return nil
	})
	if err != nil {
		t.Fatalf("Join(%q): %v", channel, err)
	}
	return pos
}

// pageRecorder collects what Join emits.
type pageRecorder struct {
	pages []edge.Page
}

func (r *pageRecorder) emit(p edge.Page) error {
	r.pages = append(r.pages, p)
	return nil
}

func (r *pageRecorder) ids() []edge.ID {
	var ids []edge.ID
	for _, p := range r.pages {
		for _, m := range p.Messages {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

func (r *pageRecorder) gap() bool {
	return slices.ContainsFunc(r.pages, func(p edge.Page) bool { return p.Gap })
}

func frameIDs(frames []*edge.Frame) []edge.ID {
	ids := make([]edge.ID, len(frames))
	for i, f := range frames {
		ids[i] = f.ID
	}
	return ids
}

// takeN takes frames from s until it has n, waiting on Notify; it fails
// the test when they do not come within waitFor or the session closes.
func takeN(t testing.TB, s *edge.Session, n int) []*edge.Frame {
	t.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	var got []*edge.Frame
	for {
		got = s.Take(got)
		if len(got) >= n {
			return got
		}
		if d, closed := s.Closed(); closed {
			if got = s.Take(got); len(got) < n {
				t.Fatalf("session closed (%v) after %d of %d frames", d, len(got), n)
			}
			return got
		}
		select {
		case <-s.Notify():
		case <-timer.C:
			t.Fatalf("got %d of %d frames within %v", len(got), n, waitFor)
		}
	}
}

// takeNone fails if s has queued frames.
func takeNone(t testing.TB, s *edge.Session) {
	t.Helper()
	if got := s.Take(nil); len(got) != 0 {
		t.Errorf("queued %v, want nothing", frameIDs(got))
	}
}

// checkIDs fails unless got is exactly want, naming the first difference.
func checkIDs(t testing.TB, what string, got, want []edge.ID) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("%s: at %d got %v, want %v (got %d ids, want %d)", what, i, got[i], want[i], len(got), len(want))
			return
		}
	}
	t.Errorf("%s: got %d ids, want %d (common prefix equal; got ends %v, want ends %v)", what, len(got), len(want), tail(got), tail(want))
}

func tail(ids []edge.ID) []edge.ID { return ids[max(0, len(ids)-3):] }

func isClosed(s *edge.Session) bool {
	_, closed := s.Closed()
	return closed
}

func TestJoinWithoutCursor(t *testing.T) {
	tests := []struct {
		name   string
		before int // messages published before the join
	}{
		{"unknown channel", 0},
		{"channel with history", 25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, b := newHub(t, edge.Config{})
			publishN(t, b, "c", tt.before)
			publishN(t, b, "other", 3)
			want, err := b.Last(context.Background(), "c")
			if err != nil {
				t.Fatal(err)
			}
			s := newSession(t, h)
			if pos := joinLive(t, s, "c"); pos != want {
				t.Errorf("Join position = %v, want broker.Last %v", pos, want)
			}
			takeNone(t, s)
			ids := publishN(t, b, "c", 10)
			publishN(t, b, "other", 3) // not subscribed
			got := takeN(t, s, len(ids))
			checkIDs(t, "live frames", frameIDs(got), ids)
			for i, f := range got {
				if f.Channel != "c" || string(f.Data) != fmt.Sprintf("c#%d", i) {
					t.Errorf("frame %d = %q on %q, want %q on c", i, f.Data, f.Channel, fmt.Sprintf("c#%d", i))
				}
			}
			takeNone(t, s)
		})
	}
}

// A cursor ahead of the channel (its history was lost) gets a gap page and
// continues from the channel's current position: the next message is
// delivered, never held back behind the unplaceable cursor.
func TestJoinCursorAhead(t *testing.T) {
	h, b := newHub(t, edge.Config{})
	publishN(t, b, "c", 3)
	s := newSession(t, h)
	var rec pageRecorder
	future := edge.ID{Ms: 9999999999999}
	pos, err := s.Join(context.Background(), "c", &future, rec.emit)
	if err != nil {
		t.Fatal(err)
	}
	last, _ := b.Last(context.Background(), "c")
	if pos != last || !rec.gap() || len(rec.ids()) != 0 {
		t.Fatalf("Join from %v: position %v, gap %v, %d messages; want position %v, a gap, none", future, pos, rec.gap(), len(rec.ids()), last)
	}
	ids := publishN(t, b, "c", 2)
	checkIDs(t, "live frames", frameIDs(takeN(t, s, 2)), ids)
}

// Start fixes the position of a subscriber without a cursor: what is
// published between Start and Finish (while a transport completes its
// handshake) is delivered, exactly once.
func TestStartFixesPosition(t *testing.T) {
	for _, before := range []int{0, 5} {
		t.Run(fmt.Sprintf("%d before", before), func(t *testing.T) {
			h, b := newHub(t, edge.Config{})
			publishN(t, b, "c", before)
			s := newSession(t, h)
			j, err := s.Start(context.Background(), "c", nil)
			if err != nil {
				t.Fatal(err)
			}
			between := publishN(t, b, "c", 3)
			if _, err := s.Finish(context.Background(), j, func(edge.Page) error { return nil }); err != nil {
				t.Fatal(err)
			}
			after := publishN(t, b, "c", 2)
			checkIDs(t, "frames", frameIDs(takeN(t, s, 5)), append(between, after...))
			takeNone(t, s)
		})
	}
}

func TestJoinWithCursor(t *testing.T) {
	const before = 1234 // more than two catch-up pages
	tests := []struct {
		name string
		// since picks the cursor from the channel's ids and its floor.
		since   func(ids []edge.ID, floor edge.ID) edge.ID
		from    int // index of the first message the session must get
		wantGap bool
	}{
		{"0-0", func([]edge.ID, edge.ID) edge.ID { return edge.ID{} }, 0, false},
		{"the floor before the first message", func(_ []edge.ID, floor edge.ID) edge.ID { return floor }, 0, false},
		{"at the first message", func(ids []edge.ID, _ edge.ID) edge.ID { return ids[0] }, 1, false},
		{"mid-way", func(ids []edge.ID, _ edge.ID) edge.ID { return ids[600] }, 601, false},
		{"one page from the end", func(ids []edge.ID, _ edge.ID) edge.ID { return ids[before-501] }, before - 500, false},
		{"at the newest message", func(ids []edge.ID, _ edge.ID) edge.ID { return ids[before-1] }, before, false},
		{"before the store started", func([]edge.ID, edge.ID) edge.ID { return edge.ID{Ms: 1} }, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, b := newHubWithHistory(t, edge.Config{}, 10_000)
			floor, err := b.Last(context.Background(), "c")
			if err != nil {
				t.Fatal(err)
			}
			ids := publishN(t, b, "c", before)
			since := tt.since(ids, floor)
			s := newSession(t, h)
			var rec pageRecorder
			pos, err := s.Join(context.Background(), "c", &since, rec.emit)
			if err != nil {
				t.Fatalf("Join: %v", err)
			}
			want := ids[tt.from:]
			checkIDs(t, "history", rec.ids(), want)
			for i, p := range rec.pages {
				if len(p.Messages) > 500 {
					t.Errorf("page %d has %d messages", i, len(p.Messages))
				}
				if p.Gap != (tt.wantGap && i == 0) {
					t.Errorf("page %d has Gap %v, want %v", i, p.Gap, tt.wantGap && i == 0)
				}
			}
			if tt.wantGap && len(rec.pages) == 0 {
				t.Error("the gap was not signalled")
			}
			wantPos := since
			if len(want) > 0 {
				wantPos = want[len(want)-1]
			}
			if pos != wantPos {
				t.Errorf("Join position = %v, want %v", pos, wantPos)
			}
			takeNone(t, s)
			// The next messages follow right after.
			next := publishN(t, b, "c", 3)
			checkIDs(t, "live", frameIDs(takeN(t, s, 3)), next)
		})
	}
}

// TestJoinSeam joins sessions with cursors while a publisher runs; each
// must see exactly the messages after its cursor, history and live
// together, with no gap and no duplicate at the seam.
func TestJoinSeam(t *testing.T) {
	const total = 20_000
	h, b := newHubWithHistory(t, edge.Config{QueueBytes: 64 << 20}, 2*total)
	floor, err := b.Last(context.Background(), "c")
	if err != nil {
		t.Fatal(err)
	}

	// The publisher writes ids[i] before it stores published = i+1, and
	// closes reached[n] once n messages are published.
	ids := make([]edge.ID, total)
	var published atomic.Int64
	milestones := []int{0, 2000, 5000, 8000, 11000, 14000, 17000, 19990}
	reached := make(map[int]chan struct{})
	for _, n := range milestones {
		reached[n] = make(chan struct{})
	}
	close(reached[0])
	pubDone := make(chan struct{})
	start := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(pubDone)
		<-start
		for i := range total {
			id, err := b.Publish(context.Background(), "c", "", fmt.Appendf(nil, "%d", i))
			if err != nil {
				t.Errorf("Publish %d: %v", i, err)
				return
			}
			ids[i] = id
			published.Store(int64(i + 1))
			if ch, ok := reached[i+1]; ok {
				close(ch)
			}
		}
	})
	// idAt returns the id of message i, which must be published.
	idAt := func(i int) edge.ID {
		if int64(i) >= published.Load() {
			panic("idAt: not yet published")
		}
		return ids[i]
	}

	// A joiner joins once at messages are published. cursor returns the
	// cursor and the index of the first message the session must get;
	// first < 0 means "right after the position Join returns" (no cursor).
	type joiner struct {
		name   string
		at     int
		cursor func() (since *edge.ID, first int)
	}
	zero := func() (*edge.ID, int) { return &edge.ID{}, 0 }
	atFloor := func() (*edge.ID, int) { return &floor, 0 }
	cursorAt := func(i int) func() (*edge.ID, int) {
		return func() (*edge.ID, int) { id := idAt(i); return &id, i + 1 }
	}
	newest := func() (*edge.ID, int) {
		i := int(published.Load()) - 1
		id := idAt(i)
		return &id, i + 1
	}
	joiners := []joiner{
		{"0-0 before publishing", 0, zero},
		{"floor before publishing", 0, atFloor},
		{"no cursor mid-way", 2000, func() (*edge.ID, int) { return nil, -1 }},
		{"0-0 mid-way", 5000, zero},
		{"floor mid-way", 8000, atFloor},
		{"cursor at 3999 mid-way", 11000, cursorAt(3999)},
		{"cursor one page back", 14000, cursorAt(13400)},
		{"cursor at the newest", 17000, newest},
		{"cursor far back near the end", 19990, cursorAt(12345)},
	}
	type result struct {
		name    string
		at      int
		first   int
		pos     edge.ID // where Join without a cursor started
		got     []edge.ID
		gap     bool
		failure string
	}
	results := make([]result, len(joiners))
	for i, j := range joiners {
		wg.Go(func() {
			r := &results[i]
			r.name, r.at = j.name, j.at
			s, err := h.NewSession()
			if err != nil {
				r.failure = err.Error()
				return
			}
			defer s.Release()
			<-reached[j.at]
			since, first := j.cursor()
			var rec pageRecorder
			pos, err := s.Join(context.Background(), "c", since, rec.emit)
			if err != nil {
				r.failure = fmt.Sprintf("Join: %v", err)
				return
			}
			r.got, r.gap = rec.ids(), rec.gap()
			r.first = first
			if first < 0 {
				r.pos = pos // resolved once the publisher is done
				if len(r.got) > 0 {
					r.failure = "Join without a cursor emitted history"
					return
				}
			}
			// Drain live frames until the publisher's last message.
			timer := time.NewTimer(30 * time.Second)
			defer timer.Stop()
			done := pubDone
			var final *edge.ID
			var buf []*edge.Frame
			for {
				buf = s.Take(buf[:0])
				for _, f := range buf {
					r.got = append(r.got, f.ID)
				}
				if final != nil && len(r.got) > 0 && r.got[len(r.got)-1] == *final {
					return
				}
				if final != nil && r.first == total {
					return // its cursor was the last message: nothing to get
				}
				if d, closed := s.Closed(); closed {
					r.failure = fmt.Sprintf("session closed: %v", d)
					return
				}
				select {
				case <-done:
					done = nil
					final = &ids[total-1]
				case <-s.Notify():
				case <-timer.C:
					r.failure = fmt.Sprintf("timed out with %d ids", len(r.got))
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, r := range results {
		t.Run(r.name, func(t *testing.T) {
			if r.failure != "" {
				t.Fatal(r.failure)
			}
			if r.first < 0 {
				// Without a cursor the session starts right after the
				// position Join returned, no older than the join.
				r.first = slices.Index(ids, r.pos) + 1
				if r.first < r.at && !(r.first == 0 && r.at == 0 && r.pos == floor) {
					t.Fatalf("Join without a cursor returned %v, not a position at or after message %d", r.pos, r.at)
				}
			}
			if r.gap {
				t.Error("a history page had Gap set; nothing was trimmed")
			}
			checkIDs(t, "history then live", r.got, ids[r.first:])
		})
	}
}

// TestJoinOverflowRereadsHistory makes live traffic overflow the join
// buffer while emit is busy: Join must read history again and still end
// exact, without closing the session.
func TestJoinOverflowRereadsHistory(t *testing.T) {
	tests := []struct {
		name   string
		rounds int // emits during which a burst overflows the buffer
	}{
		{"one overflow", 1},
		{"five overflows", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, b := newHubWithHistory(t, edge.Config{QueueBytes: 4096}, 100_000)
			size := edge.NewFrame(edge.Message{Channel: "c", Data: []byte("c#100")}).Size()
			burst := 2 * 4096 / size // more than the buffer holds
			all := publishN(t, b, "c", 50)

			s := newSession(t, h)
			entered := make(chan struct{})
			proceed := make(chan struct{})
			var rec pageRecorder
			calls := 0
			emit := func(p edge.Page) error {
				rec.emit(p)
				calls++
				if calls <= tt.rounds {
					entered <- struct{}{}
					<-proceed
				}
				return nil
			}
			type joined struct {
				pos edge.ID
				err error
			}
			res := make(chan joined, 1)
			go func() {
				pos, err := s.Join(context.Background(), "c", &edge.ID{}, emit)
				res <- joined{pos, err}
			}()
			for range tt.rounds {
				select {
				case <-entered:
				case <-time.After(waitFor):
					t.Fatal("Join did not emit")
				}
				// emit is blocked: publish faster than it returns.
				for range burst {
					all = append(all, publish(t, b, "c", "burst"))
				}
				proceed <- struct{}{}
			}
			var j joined
			select {
			case j = <-res:
			case <-time.After(waitFor):
				t.Fatal("Join did not return")
			}
			if j.err != nil {
				t.Fatalf("Join: %v", j.err)
			}
			if d, closed := s.Closed(); closed {
				t.Fatalf("session closed (%v) instead of reading history again", d)
			}
			if calls < tt.rounds+1 {
				t.Errorf("emit called %d times, want at least %d: the overflowed frames were not re-read", calls, tt.rounds+1)
			}
			var got []edge.ID
			got = append(got, rec.ids()...)
			got = append(got, frameIDs(s.Take(nil))...)
			if rec.gap() {
				t.Error("a page had Gap set; nothing was trimmed")
			}
			checkIDs(t, "history then queued", got, all)
			if want := all[len(all)-1]; j.pos != want {
				t.Errorf("Join position = %v, want %v", j.pos, want)
			}
			// And it is live now.
			next := publishN(t, b, "c", 5)
			checkIDs(t, "live", frameIDs(takeN(t, s, 5)), next)
		})
	}
}

// TestJoinGivesUpOnEndlessOverflow: a client that can never catch up is a
// slow consumer; Join must not loop forever.
func TestJoinGivesUpOnEndlessOverflow(t *testing.T) {
	h, b := newHubWithHistory(t, edge.Config{QueueBytes: 4096}, 1_000_000)
	s := newSession(t, h)
	const maxEmits = 1000
	calls := 0
	emit := func(edge.Page) error {
		if calls++; calls > maxEmits {
			return errors.New("test: Join never gave up")
		}
		publishN(t, b, "c", 20) // overflows the 4 KiB buffer every time
		return nil
	}
	publishN(t, b, "c", 1)
	_, err := s.Join(context.Background(), "c", &edge.ID{}, emit)
	if !errors.Is(err, edge.ErrSessionClosed) {
		t.Fatalf("Join = %v after %d emits, want ErrSessionClosed", err, calls)
	}
	if d, _ := s.Closed(); d != edge.DisconnectSlow {
		t.Errorf("Closed = %v, want %v", d, edge.DisconnectSlow)
	}
	if b.Watched("c") {
		t.Error("the failed Join left the channel subscribed")
	}
}

func TestJoinErrors(t *testing.T) {
	errBackend := fmt.Errorf("test: %w", edge.ErrUnavailable)
	errEmit := errors.New("test: client went away")
	tests := []struct {
		name   string
		setup  func(b *testBroker)
		since  *edge.ID
		emit   func(edge.Page) error
		wantIs error
	}{
		{"history fails", func(b *testBroker) { b.historyErr = errBackend }, &edge.ID{}, nil, errBackend},
		{"last fails", func(b *testBroker) { b.lastErr = errBackend }, nil, nil, errBackend},
		{"emit fails", func(*testBroker) {}, &edge.ID{}, func(edge.Page) error { return errEmit }, errEmit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, b := newHub(t, edge.Config{})
			publishN(t, b, "c", 3)
			tt.setup(b)
			s := newSession(t, h)
			emit := tt.emit
			if emit == nil {
				emit = func(edge.Page) error { return nil }
			}
			if _, err := s.Join(context.Background(), "c", tt.since, emit); !errors.Is(err, tt.wantIs) {
				t.Fatalf("Join = %v, want an error wrapping %v", err, tt.wantIs)
			}
			if b.Watched("c") {
				t.Error("the failed Join left the channel watched")
			}
			publishN(t, b, "c", 1)
			takeNone(t, s)
			// The channel can be joined again once the backend is back.
			b.historyErr, b.lastErr = nil, nil
			joinLive(t, s, "c")
		})
	}
}

func TestSlowConsumer(t *testing.T) {
	const queue = 4096
	h, b := newHub(t, edge.Config{QueueBytes: queue})
	payload := strings.Repeat("x", 100)
	size := edge.NewFrame(edge.Message{Channel: "c", Data: []byte(payload)}).Size()
	fits := queue / size

	slow := newSession(t, h)
	fast := []*edge.Session{newSession(t, h), newSession(t, h)}
	joinLive(t, slow, "c")
	for _, s := range fast {
		joinLive(t, s, "c")
	}
	received := make([][]*edge.Frame, len(fast))
	var ids []edge.ID
	pub := func() {
		t.Helper()
		ids = append(ids, publish(t, b, "c", payload))
		for i, s := range fast {
			received[i] = s.Take(received[i])
		}
	}
	for range fits {
		pub()
	}
	if isClosed(slow) {
		t.Fatalf("closed with %d frames (%d bytes) queued, within QueueBytes %d", fits, fits*size, queue)
	}
	if _, closed := slow.Closed(); closed {
		t.Fatal("Closed reports closed while within QueueBytes")
	}
	pub() // over the budget
	if !isClosed(slow) {
		t.Fatalf("still open with %d bytes queued, over QueueBytes %d", (fits+1)*size, queue)
	}
	d, closed := slow.Closed()
	if !closed || d != edge.DisconnectSlow {
		t.Errorf("Closed = %v, %v; want %v", d, closed, edge.DisconnectSlow)
	}
	if !d.Reconnect() {
		t.Error("a slow consumer is told not to reconnect")
	}
	for range 20 {
		pub()
	}
	takeNone(t, slow)
	for i, s := range fast {
		if isClosed(s) {
			t.Errorf("fast session %d closed", i)
		}
		checkIDs(t, fmt.Sprintf("fast session %d", i), frameIDs(received[i]), ids)
	}
	// Every subscriber shares one frame per message (encoded once).
	for k := range ids {
		if received[0][k] != received[1][k] {
			t.Fatalf("message %d reached the sessions as different frames", k)
		}
	}
}

func TestSubscribeLimits(t *testing.T) {
	const maxChannels = 3
	tests := []struct {
		name string
		run  func(t *testing.T, s *edge.Session, b *testBroker)
	}{
		{"MaxChannels", func(t *testing.T, s *edge.Session, b *testBroker) {
			for _, ch := range []string{"a", "b", "c"} {
				if err := s.Subscribe(context.Background(), ch); err != nil {
					t.Fatalf("Subscribe(%q): %v", ch, err)
				}
			}
			if err := s.Subscribe(context.Background(), "d"); !errors.Is(err, edge.ErrTooManyChannels) {
				t.Errorf("Subscribe over MaxChannels = %v, want ErrTooManyChannels", err)
			}
			if _, err := s.Join(context.Background(), "d", nil, nil); !errors.Is(err, edge.ErrTooManyChannels) {
				t.Errorf("Join over MaxChannels = %v, want ErrTooManyChannels", err)
			}
			if b.Watched("d") {
				t.Error("a refused channel is watched")
			}
			if err := s.Unsubscribe("a"); err != nil {
				t.Fatalf("Unsubscribe: %v", err)
			}
			if err := s.Subscribe(context.Background(), "d"); err != nil {
				t.Errorf("Subscribe after Unsubscribe freed a slot: %v", err)
			}
		}},
		{"double subscribe", func(t *testing.T, s *edge.Session, _ *testBroker) {
			joinLive(t, s, "a")
			if err := s.Subscribe(context.Background(), "a"); !errors.Is(err, edge.ErrBadRequest) {
				t.Errorf("second Subscribe = %v, want ErrBadRequest", err)
			}
			if _, err := s.Join(context.Background(), "a", nil, nil); !errors.Is(err, edge.ErrBadRequest) {
				t.Errorf("second Join = %v, want ErrBadRequest", err)
			}
		}},
		{"unsubscribe unknown channel", func(t *testing.T, s *edge.Session, _ *testBroker) {
			joinLive(t, s, "a")
			if err := s.Unsubscribe("b"); !errors.Is(err, edge.ErrBadRequest) {
				t.Errorf("Unsubscribe of an unknown channel = %v, want ErrBadRequest", err)
			}
		}},
		{"unsubscribe twice", func(t *testing.T, s *edge.Session, _ *testBroker) {
			joinLive(t, s, "a")
			if err := s.Unsubscribe("a"); err != nil {
				t.Fatal(err)
			}
			if err := s.Unsubscribe("a"); !errors.Is(err, edge.ErrBadRequest) {
				t.Errorf("second Unsubscribe = %v, want ErrBadRequest", err)
			}
		}},
		{"unsubscribe drops queued frames and stops delivery", func(t *testing.T, s *edge.Session, b *testBroker) {
			joinLive(t, s, "a")
			joinLive(t, s, "b")
			var wantB []edge.ID
			for range 3 {
				publish(t, b, "a", "a")
				wantB = append(wantB, publish(t, b, "b", "b"))
			}
			if err := s.Unsubscribe("a"); err != nil {
				t.Fatal(err)
			}
			if b.Watched("a") {
				t.Error("a channel without subscribers is still watched")
			}
			checkIDs(t, "queued after Unsubscribe", frameIDs(s.Take(nil)), wantB)
			publish(t, b, "a", "a")
			next := publish(t, b, "b", "b")
			checkIDs(t, "later", frameIDs(takeN(t, s, 1)), []edge.ID{next})
			takeNone(t, s)
		}},
		{"unsubscribe keeps the byte budget right", func(t *testing.T, s *edge.Session, b *testBroker) {
			// Fill the queue with a's frames, drop them, then b may
			// use the whole budget again without being closed.
			joinLive(t, s, "a")
			joinLive(t, s, "b")
			payload := strings.Repeat("x", 100)
			fits := 4096 / edge.NewFrame(edge.Message{Channel: "a", Data: []byte(payload)}).Size()
			for range fits {
				publish(t, b, "a", payload)
			}
			if err := s.Unsubscribe("a"); err != nil {
				t.Fatal(err)
			}
			for range fits {
				publish(t, b, "b", payload)
			}
			if d, closed := s.Closed(); closed {
				t.Fatalf("closed (%v): the dropped frames still count against the queue", d)
			}
			if got := len(s.Take(nil)); got != fits {
				t.Errorf("queued %d frames, want %d", got, fits)
			}
		}},
		{"subscribe after close", func(t *testing.T, s *edge.Session, _ *testBroker) {
			s.Close(edge.DisconnectServerError)
			if err := s.Subscribe(context.Background(), "a"); !errors.Is(err, edge.ErrSessionClosed) {
				t.Errorf("Subscribe on a closed session = %v, want ErrSessionClosed", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, b := newHub(t, edge.Config{MaxChannels: maxChannels, QueueBytes: 4096})
			tt.run(t, newSession(t, h), b)
		})
	}
}

func TestRelease(t *testing.T) {
	h, b := newHub(t, edge.Config{})
	s1, err := h.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	s2 := newSession(t, h)
	if got := h.Sessions(); got != 2 {
		t.Fatalf("Sessions = %d, want 2", got)
	}
	joinLive(t, s1, "shared")
	joinLive(t, s1, "own")
	joinLive(t, s2, "shared")

	s1.Release()
	if got := h.Sessions(); got != 1 {
		t.Errorf("Sessions after Release = %d, want 1", got)
	}
	s1.Release()
	if got := h.Sessions(); got != 1 {
		t.Errorf("Sessions after a second Release = %d, want 1", got)
	}
	if !isClosed(s1) {
		t.Error("a released session is not closed")
	}
	if b.Watched("own") {
		t.Error("Release left its channel watched")
	}
	if !b.Watched("shared") {
		t.Error("Release unwatched a channel another session subscribes to")
	}
	id := publish(t, b, "shared", "x")
	publish(t, b, "own", "x")
	takeNone(t, s1)
	checkIDs(t, "other session", frameIDs(takeN(t, s2, 1)), []edge.ID{id})
	if err := s1.Unsubscribe("shared"); err == nil {
		t.Error("a released session is still subscribed")
	}

	s2.Release()
	if got := h.Sessions(); got != 0 {
		t.Errorf("Sessions after releasing all = %d, want 0", got)
	}
}

func TestShutdown(t *testing.T) {
	tests := []struct {
		name     string
		sessions int
		window   time.Duration
		ctxAfter time.Duration // ctx deadline
		minTime  time.Duration // Shutdown may not return sooner
		maxTime  time.Duration // nor later
	}{
		{"no sessions", 0, time.Hour, time.Hour, 0, waitFor},
		{"short window", 100, 100 * time.Millisecond, time.Hour, 50 * time.Millisecond, waitFor},
		{"fewer sessions than batches", 3, 100 * time.Millisecond, time.Hour, 0, waitFor},
		{"ctx ends a long window", 100, time.Hour, 100 * time.Millisecond, 0, waitFor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, b := newHub(t, edge.Config{})
			sessions := make([]*edge.Session, tt.sessions)
			for i := range sessions {
				sessions[i] = newSession(t, h)
				if i%2 == 0 {
					joinLive(t, sessions[i], "c")
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), tt.ctxAfter)
			defer cancel()
			start := time.Now()
			h.Shutdown(ctx, tt.window)
			took := time.Since(start)
			if took < tt.minTime || took > tt.maxTime {
				t.Errorf("Shutdown took %v, want between %v and %v", took, tt.minTime, tt.maxTime)
			}
			if !h.ShuttingDown() {
				t.Error("ShuttingDown = false after Shutdown")
			}
			if _, err := h.NewSession(); !errors.Is(err, edge.ErrShuttingDown) {
				t.Errorf("NewSession after Shutdown = %v, want ErrShuttingDown", err)
			}
			for i, s := range sessions {
				if !isClosed(s) {
					t.Fatalf("session %d still open after Shutdown returned", i)
				}
				if d, _ := s.Closed(); d != edge.DisconnectShutdown {
					t.Errorf("session %d closed with %v, want %v", i, d, edge.DisconnectShutdown)
				}
			}
			publish(t, b, "c", "after")
			for _, s := range sessions {
				takeNone(t, s)
			}
		})
	}
}

// TestShutdownRacingNewSession: a session that NewSession returned while
// Shutdown ran must be closed by the time Shutdown returns.
func TestShutdownRacingNewSession(t *testing.T) {
	for i := range 30 {
		h, _ := newHub(t, edge.Config{})
		var mu sync.Mutex
		var opened []*edge.Session
		var wg sync.WaitGroup
		ready := make(chan struct{})
		for range 2 {
			wg.Go(func() {
				ready <- struct{}{}
				for {
					s, err := h.NewSession()
					if err != nil {
						return
					}
					mu.Lock()
					opened = append(opened, s)
					mu.Unlock()
				}
			})
		}
		<-ready
		<-ready
		h.Shutdown(context.Background(), time.Millisecond)
		// Every NewSession either failed or returned a session that
		// Shutdown closed; none may be left open.
		wg.Wait()
		var open int
		for _, s := range opened {
			if !isClosed(s) {
				open++
			}
			s.Release()
		}
		if open > 0 {
			t.Fatalf("run %d: %d sessions that NewSession returned stayed open after Shutdown returned", i, open)
		}
	}
}

func TestClassify(t *testing.T) {
	secret := errors.New("dial tcp 10.1.2.3:6379: password=hunter2")
	tests := []struct {
		name       string
		err        error
		wantCode   string
		wantStatus int
		wantMsg    string
	}{
		{"sentinel", edge.ErrBadChannel, "bad_channel", 400, "invalid channel"},
		{"wrapped", fmt.Errorf("%w: channel is empty", edge.ErrBadChannel), "bad_channel", 400, "invalid channel: channel is empty"},
		{"wrapped twice", fmt.Errorf("%w: outer", fmt.Errorf("%w: inner", edge.ErrPayloadTooLarge)), "payload_too_large", 413, "payload too large: inner: outer"},
		{"bad request", fmt.Errorf("%w: already subscribed", edge.ErrBadRequest), "bad_request", 400, "bad request: already subscribed"},
		{"bad cursor", edge.ErrBadCursor, "bad_cursor", 400, "malformed cursor"},
		{"too many channels", edge.ErrTooManyChannels, "too_many_channels", 400, "too many channels"},
		{"unauthorized", edge.ErrUnauthorized, "unauthorized", 401, "missing or invalid credentials"},
		{"forbidden", edge.ErrForbidden, "forbidden", 403, "not allowed"},
		{"not found", edge.ErrNotFound, "not_found", 404, "not found"},
		{"method not allowed", edge.ErrMethodNotAllowed, "method_not_allowed", 405, "method not allowed"},
		{"unavailable", fmt.Errorf("%w: redis is down", edge.ErrUnavailable), "unavailable", 503, "backend unavailable: redis is down"},
		{"shutting down", edge.ErrShuttingDown, "shutting_down", 503, "shutting down"},
		{"cause kept from clients", edge.WithCause(fmt.Errorf("%w: redis publish failed", edge.ErrUnavailable), secret), "unavailable", 503, "backend unavailable: redis publish failed"},
		{"unknown error", secret, "internal", 500, "internal error"},
		{"unknown error wrapped", fmt.Errorf("resume: read %q: %w", "c", secret), "internal", 500, "internal error"},
		{"session closed is not a client error", edge.ErrSessionClosed, "internal", 500, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, status, msg := edge.Classify(tt.err)
			if code != tt.wantCode || status != tt.wantStatus || msg != tt.wantMsg {
				t.Errorf("Classify = %q, %d, %q; want %q, %d, %q", code, status, msg, tt.wantCode, tt.wantStatus, tt.wantMsg)
			}
			if strings.Contains(msg, "hunter2") || strings.Contains(msg, "10.1.2.3") {
				t.Errorf("Classify leaks internals: %q", msg)
			}
		})
	}
}

func TestDisconnectReconnect(t *testing.T) {
	tests := []struct {
		d    edge.Disconnect
		want bool
	}{
		{edge.DisconnectShutdown, true},
		{edge.DisconnectSlow, true},
		{edge.DisconnectServerError, true},
		{edge.DisconnectBadRequest, false},
	}
	for _, tt := range tests {
		t.Run(tt.d.Reason, func(t *testing.T) {
			if got := tt.d.Reconnect(); got != tt.want {
				t.Errorf("%v.Reconnect() = %v, want %v", tt.d, got, tt.want)
			}
		})
	}
}

// TestFrameEncodedOnce: however many writers ask at once, an encoding is
// built once and shared.
func TestFrameEncodedOnce(t *testing.T) {
	f := edge.NewFrame(edge.Message{Channel: "c", ID: edge.ID{Ms: 1, Seq: 2}, Data: []byte("x")})
	var builds atomic.Int32
	build := func(m *edge.Message) any {
		builds.Add(1)
		return []byte(m.ID.String() + ":" + string(m.Data))
	}
	const readers = 64
	got := make([]any, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() { got[i] = f.Encoded(edge.EncodingSSE, build) })
	}
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Fatalf("built %d times, want once", n)
	}
	for i, v := range got {
		if b, ok := v.([]byte); !ok || &b[0] != &got[0].([]byte)[0] {
			t.Fatalf("reader %d got a different value %v", i, v)
		}
	}
	// Another encoding is built separately.
	f.Encoded(edge.EncodingJSON, build)
	if n := builds.Load(); n != 2 {
		t.Errorf("built %d times after a second encoding, want 2", n)
	}
}

// lossyBroker lets a test report a channel lost, as the Redis relay does.
type lossyBroker struct {
	*resume.Memory
	lost func(string)
}

func (b *lossyBroker) OnLost(lost func(string)) { b.lost = lost }

// A broker's loss report closes exactly that channel's sessions with
// DisconnectResync, so their clients resume and see the gap.
func TestLostChannelResyncsItsSessions(t *testing.T) {
	b := &lossyBroker{Memory: resume.NewMemory(resume.MemoryConfig{})}
	hub := edge.NewHub(b, edge.Config{}, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	join := func(ch string) *edge.Session {
		s, err := hub.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Release)
		if _, err := s.Join(ctx, ch, nil, func(edge.Page) error { return nil }); err != nil {
			t.Fatal(err)
		}
		return s
	}
	hit, other := join("hit"), join("other")
	b.lost("hit")
	if d, closed := hit.Closed(); !closed || d != edge.DisconnectResync || !d.Reconnect() {
		t.Fatalf("session of the lost channel: %v %v", d, closed)
	}
	if _, closed := other.Closed(); closed {
		t.Fatal("a session of another channel was closed")
	}
}

// wakeFunc is a Waker that calls itself.
type wakeFunc func()

func (f wakeFunc) Wake() { f() }

// With a wake function, the session calls it instead of signalling Notify:
// for queued frames and for the close.
func TestSessionWake(t *testing.T) {
	h, b := newHub(t, edge.Config{})
	s := newSession(t, h)
	var wakes atomic.Int32
	s.SetWake(wakeFunc(func() { wakes.Add(1) }))
	joinLive(t, s, "c")
	before := wakes.Load()
	publishN(t, b, "c", 3)
	if got := wakes.Load() - before; got != 3 {
		t.Errorf("%d wakes for 3 frames, want 3", got)
	}
	if got := len(s.Take(nil)); got != 3 {
		t.Errorf("took %d frames, want 3", got)
	}
	select {
	case <-s.Notify():
		t.Error("Notify signalled while a wake function is set")
	default:
	}
	s.Close(edge.DisconnectSlow)
	if got := wakes.Load() - before; got != 4 {
		t.Errorf("%d wakes after the close, want 4", got)
	}
	s.SetWake(nil)
	s.Close(edge.DisconnectShutdown) // a no-op: the first reason wins
	if d, _ := s.Closed(); d != edge.DisconnectSlow {
		t.Errorf("closed with %v, want %v", d, edge.DisconnectSlow)
	}
}

// TestShutdownClosesFirstAtOnce: sessions marked CloseFirst close as
// Shutdown begins, while the others wait their turn in the window.
func TestShutdownClosesFirstAtOnce(t *testing.T) {
	h, _ := newHub(t, edge.Config{})
	first := newSession(t, h)
	first.CloseFirst()
	spread := []*edge.Session{newSession(t, h), newSession(t, h)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Shutdown(ctx, time.Hour); close(done) }()
	select {
	case <-first.Notify():
	case <-time.After(waitFor):
		t.Fatal("the CloseFirst session was not closed")
	}
	// Two sessions in 20 batches over an hour: the second waits 3 minutes.
	closed := 0
	for _, s := range spread {
		if isClosed(s) {
			closed++
		}
	}
	if !isClosed(first) || closed == len(spread) {
		t.Fatalf("first closed %v, %d of %d spread sessions closed at once", isClosed(first), closed, len(spread))
	}
	cancel()
	<-done
	for i, s := range spread {
		if !isClosed(s) {
			t.Errorf("session %d open after Shutdown returned", i)
		}
	}
}

// TestStats counts sessions, subscriptions and queues by kind.
func TestStats(t *testing.T) {
	h, b := newHub(t, edge.Config{})
	a, c := newSession(t, h), newSession(t, h)
	c.SetKind(1)
	joinLive(t, a, "x")
	joinLive(t, a, "y")
	joinLive(t, c, "x")
	publish(t, b, "x", "12345")
	var st [2]edge.SessionStats
	h.Stats(st[:])
	if st[0].Sessions != 1 || st[0].Subscriptions != 2 || st[0].QueuedFrames != 1 || st[0].QueuedBytes == 0 || st[0].MaxQueuedBytes != st[0].QueuedBytes {
		t.Errorf("kind 0: %+v", st[0])
	}
	if st[1].Sessions != 1 || st[1].Subscriptions != 1 || st[1].QueuedFrames != 1 {
		t.Errorf("kind 1: %+v", st[1])
	}
}

// TestLateRelayOfHistory: a relay that hands over a message after the
// channel went live at or past it (Redis relays on another connection
// than history is read on) queues nothing twice.
func TestLateRelayOfHistory(t *testing.T) {
	h, b := newHub(t, edge.Config{})
	ids := publishN(t, b, "c", 2)
	s := newSession(t, h)
	rec := &pageRecorder{}
	pos, err := s.Join(context.Background(), "c", &edge.ID{}, rec.emit)
	if err != nil || pos != ids[1] {
		t.Fatalf("Join: %v, %v; want position %v", pos, err, ids[1])
	}
	late := func(id edge.ID) {
		b.relay(context.Background(), edge.Message{Channel: "c", ID: id, Data: []byte("late")})
	}
	late(ids[0])
	late(ids[1])
	takeNone(t, s)
	next := publish(t, b, "c", "next")
	late(next)
	late(ids[1])
	checkIDs(t, "queued", frameIDs(s.Take(nil)), []edge.ID{next})
}

// With SetWakeAll, the hub wakes the sessions a live message reached in one
// call, once the frame is queued on each; a session without a Waker is
// signalled through Notify and is not in the call.
func TestHubWakeAll(t *testing.T) {
	h, b := newHub(t, edge.Config{})
	var calls [][]edge.Waker
	var mu sync.Mutex
	h.SetWakeAll(func(ws []edge.Waker) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, slices.Clone(ws))
	})
	var sessions []*edge.Session
	var wakers []edge.Waker
	var alone atomic.Int32 // wakes of one session on its own
	for range 3 {
		s := newSession(t, h)
		joinLive(t, s, "c")
		sessions = append(sessions, s)
		w := wakeFunc(func() { alone.Add(1) })
		wakers = append(wakers, &w)
		s.SetWake(&w)
	}
	plain := newSession(t, h)
	joinLive(t, plain, "c")
	publishN(t, b, "c", 2)
	if n := alone.Load(); n != 0 {
		t.Errorf("%d sessions woken on their own for live messages", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 {
		t.Fatalf("%d wakeAll calls for 2 messages, want 2", len(calls))
	}
	for i, ws := range calls {
		if len(ws) != len(wakers) {
			t.Fatalf("call %d woke %d sessions, want %d", i, len(ws), len(wakers))
		}
		for j := range ws {
			if ws[j] != wakers[j] {
				t.Errorf("call %d woke %v at %d, want session %d's Waker", i, ws[j], j, j)
			}
		}
	}
	for i, s := range sessions {
		if got := len(s.Take(nil)); got != 2 {
			t.Errorf("session %d has %d frames queued, want 2", i, got)
		}
	}
	select {
	case <-plain.Notify():
	default:
		t.Error("the session without a Waker was not signalled")
	}
}

// The hub delivers every frame of a channel with one string, the first
// subscriber's, whatever strings the publisher and the other subscribers
// hold: sessions and cursors then match frames to channels by pointer.
func TestHubSharesChannelName(t *testing.T) {
	h, b := newHub(t, edge.Config{})
	name := func() string { return string([]byte("shared")) } // a new allocation each call
	first := name()
	for _, ch := range []string{first, name()} {
		joinLive(t, newSession(t, h), ch)
	}
	s := newSession(t, h)
	joinLive(t, s, name())
	publish(t, b, name(), "x")
	frames := s.Take(nil)
	if len(frames) != 1 {
		t.Fatalf("took %d frames, want 1", len(frames))
	}
	if unsafe.StringData(frames[0].Channel) != unsafe.StringData(first) {
		t.Error("the frame's channel is not the string of the channel's first subscriber")
	}
}
