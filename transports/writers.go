package transports

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/edgeworks/edge/edge"
)

const (
	// maxIdleWriters bounds the writers waiting for work, whatever the
	// number of connections: one that would be over it ends instead.
	maxIdleWriters = 4096
	// writerIdle is how long a writer waits for work, between one and two
	// of it, before it ends. Under load the next Kick comes within
	// microseconds; an idle edge keeps no writer for longer than this.
	writerIdle = 20 * time.Millisecond
)

// writers are a Server's writer goroutines, which run the turns that
// connections kick. A writer that finished a run waits for the next; the
// one that waited least is handed the next turn (its stack is the warmest),
// and every writerIdle a reaper ends those that waited through a whole
// period. A waiting writer blocks on a channel of its own: handing it a
// turn costs one lock and one buffered send, and its wait no timer.
type writers struct {
	mu      sync.Mutex
	idle    []*writer   // waiting, in the order they began to; the last waited least
	running int         // writers, waiting or not
	ended   sync.Cond   // signalled when running drops to 0
	period  uint64      // reaper periods begun
	reaper  *time.Timer // armed while there are writers
	stopped bool
}

// handChunk is the most turns handed to a writer at once: the turns a
// message woke are handed out in chunks of it, so one wake of a writer
// serves several connections while a large fan-out still spreads over
// several writers.
const handChunk = 16

// writer is one writer goroutine's mailbox: the turns to run, and a wake
// that says how many (0: end).
type writer struct {
	wake  chan int
	turns [handChunk]*writeTurn
	since uint64 // the reaper period in which it began to wait
}

func newWriters() *writers {
	w := &writers{}
	w.ended.L = &w.mu
	w.reaper = time.AfterFunc(time.Hour, w.reap)
	w.reaper.Stop()
	return w
}

// kicker is a Waker whose wake kicks a write turn: a stream, a waiting
// long-poll.
type kicker interface {
	edge.Waker
	kickTurn() *writeTurn
}

// wakeAll kicks the turns of ws (see edge.Hub.SetWakeAll), handing those
// that were idle to writers in chunks of handChunk.
func (w *writers) wakeAll(ws []edge.Waker) {
	var chunk [handChunk]*writeTurn
	n := 0
	for _, x := range ws {
		k, ok := x.(kicker)
		if !ok {
			x.Wake()
			continue
		}
		t := k.kickTurn()
		if !t.state.CompareAndSwap(turnIdle, turnPending) {
			continue
		}
		chunk[n] = t
		if n++; n == handChunk {
			w.hand(chunk[:])
			n = 0
		}
	}
	if n > 0 {
		w.hand(chunk[:n])
	}
}

// hand runs ts, at most handChunk turns, on the writer that waited least,
// or on a new one.
func (w *writers) hand(ts []*writeTurn) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 {
		wr := w.idle[n-1]
		w.idle[n-1] = nil
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		wr.wake <- copy(wr.turns[:], ts)
		return
	}
	w.running++
	if w.running == 1 && !w.stopped {
		w.reaper.Reset(writerIdle)
	}
	w.mu.Unlock()
	wr := &writer{wake: make(chan int, 1)}
	go w.work(wr, copy(wr.turns[:], ts))
}

// work runs wr's first n turns, then each chunk it is handed, until it is
// told to end or may not wait.
func (w *writers) work(wr *writer, n int) {
	for n > 0 {
		// One run of the chunk, at random so that no connection is
		// never sampled, samples the latency: every run while turns
		// come one at a time, one in up to handChunk under fan-out.
		sample := rand.IntN(n)
		for i, t := range wr.turns[:n] {
			t.run(i == sample)
			wr.turns[i] = nil
		}
		n = w.wait(wr)
	}
}

// wait puts wr among the waiting writers and returns how many turns it is
// handed, or 0 when it is to end: now, when the writers are stopped or
// maxIdleWriters already wait, or later when the reaper or the stop ends
// it.
func (w *writers) wait(wr *writer) int {
	w.mu.Lock()
	if w.stopped || len(w.idle) >= maxIdleWriters {
		w.exitLocked()
		w.mu.Unlock()
		return 0
	}
	wr.since = w.period
	w.idle = append(w.idle, wr)
	w.mu.Unlock()
	if n := <-wr.wake; n > 0 {
		return n
	}
	w.mu.Lock()
	w.exitLocked()
	w.mu.Unlock()
	return 0
}
func (w *writers) exitLocked() {
	w.running--
	if w.running == 0 {
		w.ended.Broadcast()
	}
}

// reap ends the writers that have waited since before the period that
// just ended, and runs again after writerIdle while writers remain.
func (w *writers) reap() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	n := 0
	for n < len(w.idle) && w.idle[n].since < w.period {
		w.idle[n].wake <- 0
		n++
	}
	w.idle = append(w.idle[:0], w.idle[n:]...)
	clear(w.idle[len(w.idle) : len(w.idle)+n])
	w.period++
	if w.running > 0 {
		w.reaper.Reset(writerIdle)
	}
}

// stopAndWait ends the waiting writers and waits for every writer to end.
// A turn kicked afterwards still runs, on a writer that then ends at once.
func (w *writers) stopAndWait() {
	w.mu.Lock()
	w.stopped = true
	w.reaper.Stop()
	for _, wr := range w.idle {
		wr.wake <- 0
	}
	clear(w.idle)
	w.idle = w.idle[:0]
	for w.running > 0 {
		w.ended.Wait()
	}
	w.mu.Unlock()
}
