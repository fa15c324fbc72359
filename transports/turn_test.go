package transports

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
)

// kickAll kicks n turns on w, each counting its run into runs and
// signalling done, and waits for every run.
func kickAll(t *testing.T, w *writers, n int, runs *atomic.Int32) {
	t.Helper()
	done := make(chan struct{}, n)
	turns := make([]writeTurn, n)
	for i := range turns {
		turns[i].write = func() {
			if !turns[i].sample {
				t.Error("a turn kicked alone did not sample the latency")
			}
			runs.Add(1)
			done <- struct{}{}
		}
		turns[i].Kick(w)
	}
	for range n {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d kicked turns ran", runs.Load(), n)
		}
	}
}

// running returns how many writers w has.
func running(w *writers) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running
}

// waitEnded waits until w has no writer.
func waitEnded(t *testing.T, w *writers) {
	t.Helper()
	ended := make(chan struct{})
	go func() {
		w.mu.Lock()
		for w.running > 0 {
			w.ended.Wait()
		}
		w.mu.Unlock()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d writers still run 10 s after the last kick", running(w))
	}
}

func TestWriters(t *testing.T) {
	tests := []struct {
		name string
		// end makes w's writers end, and returns once they have.
		end func(t *testing.T, w *writers)
	}{
		{"stopped", func(t *testing.T, w *writers) { w.stopAndWait() }},
		{"idle", func(t *testing.T, w *writers) {
			// Idle writers end by themselves within two writerIdle.
			waitEnded(t, w)
			w.stopAndWait()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWriters()
			var runs atomic.Int32
			kickAll(t, w, 500, &runs)
			if n := running(w); n > 500 {
				t.Errorf("%d writers run after 500 kicks", n)
			}
			tt.end(t, w)
			if n := running(w); n != 0 {
				t.Fatalf("%d writers run after they ended", n)
			}
			// A turn kicked after the stop still runs, on a writer
			// that then ends at once.
			kickAll(t, w, 3, &runs)
			waitEnded(t, w)
			if got := runs.Load(); got != 503 {
				t.Errorf("%d runs, want 503", got)
			}
		})
	}
}

// testKicker is a kicker over a bare turn.
type testKicker struct {
	t *writeTurn
	w *writers
}

func (k testKicker) Wake()                { k.t.Kick(k.w) }
func (k testKicker) kickTurn() *writeTurn { return k.t }

// wakeAll runs each idle turn once, in chunks, skips a turn already on its
// way, and wakes a Waker that is not a turn's by itself.
func TestWritersWakeAll(t *testing.T) {
	w := newWriters()
	defer w.stopAndWait()
	const n = 5*handChunk + 3
	var runs [n]atomic.Int32
	var sampled atomic.Int32
	done := make(chan struct{}, n)
	turns := make([]writeTurn, n)
	var ws []edge.Waker
	for i := range turns {
		turns[i].write = func() {
			runs[i].Add(1)
			if turns[i].sample {
				sampled.Add(1)
			}
			done <- struct{}{}
		}
		ws = append(ws, testKicker{&turns[i], w})
	}
	turns[7].state.Store(turnPending) // already on its way: not handed again
	var plain atomic.Int32
	ws = append(ws, wakeFunc(func() { plain.Add(1) }))
	w.wakeAll(ws)
	for range n - 1 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("not every woken turn ran")
		}
	}
	for i := range runs {
		want := int32(1)
		if i == 7 {
			want = 0
		}
		if got := runs[i].Load(); got != want {
			t.Errorf("turn %d ran %d times, want %d", i, got, want)
		}
	}
	// One run samples the latency per chunk handed to a writer.
	if got, want := sampled.Load(), int32((n-1+handChunk-1)/handChunk); got != want {
		t.Errorf("%d runs sampled the latency, want %d (one per chunk)", got, want)
	}
	if plain.Load() != 1 {
		t.Errorf("a Waker that is no turn's was woken %d times, want 1", plain.Load())
	}
}

// wakeFunc is a Waker that calls itself.
type wakeFunc func()

func (f wakeFunc) Wake() { f() }
