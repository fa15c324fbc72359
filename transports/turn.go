package transports

import (
	"sync"
	"sync/atomic"
	"time"
)

// States of a writeTurn.
const (
	turnIdle    int32 = iota // no write is due
	turnPending              // a goroutine was started to write
	turnClosed               // the connection ended: no more writes
)

// writeTurn serialises a connection's writes without keeping a goroutine
// for them: Kick has write run on a writer goroutine unless a run is
// already on its way. An idle connection so costs no goroutine stack for
// writing, and a burst of frames costs one run, not one per frame.
//
// A Server's writers are shared by all its connections: one that finished
// a run waits briefly for the next Kick of any connection (see writers),
// so that under
// load a run reuses a stack that has already grown to the depth of a
// write instead of growing a new goroutine's on every burst.
//
// Whoever holds mu owns the connection's output: the goroutine running
// write, or a caller of Lock (the handler while it writes history, the
// WebSocket reader while it joins a channel).
type writeTurn struct {
	mu    sync.Mutex
	state atomic.Int32
	write func() // runs with mu held; set before the first Kick
}

// Kick makes sure write runs after this call, on one of w's writer
// goroutines: one waiting for work, or a new one. It never blocks.
func (t *writeTurn) Kick(w *writers) {
	if t.state.CompareAndSwap(turnIdle, turnPending) {
		select {
		case w.handoff <- t:
		default:
			w.start(t)
		}
	}
}

// KickHere is Kick for a caller that may block: it runs write itself
// instead of handing it to a writer.
func (t *writeTurn) KickHere() {
	if t.state.CompareAndSwap(turnIdle, turnPending) {
		t.run()
	}
}

const (
	// maxIdleWriters bounds the writers waiting for work, whatever the
	// number of connections: one that would be over it ends instead.
	maxIdleWriters = 4096
	// writerIdle is how long a writer waits for work, between one and two
	// of it, before it ends. Under load the next Kick comes within
	// microseconds; an idle edge keeps no writer for longer than this.
	writerIdle = 20 * time.Millisecond
)

// writers are a Server's writer goroutines: each runs the turns handed to
// it while it keeps getting work, and ends after writerIdle without any,
// or when the server stops them.
type writers struct {
	handoff chan *writeTurn // a kicked turn, to a writer waiting for one
	stop    chan struct{}   // closed by stopAndWait
	idle    atomic.Int32    // writers waiting on handoff

	mu      sync.Mutex
	ended   sync.Cond // signalled when running drops to 0
	running int
}

func newWriters() *writers {
	w := &writers{handoff: make(chan *writeTurn), stop: make(chan struct{})}
	w.ended.L = &w.mu
	return w
}

// start runs t on a new writer.
func (w *writers) start(t *writeTurn) {
	w.mu.Lock()
	w.running++
	w.mu.Unlock()
	go w.work(t)
}

// work runs t, then the turns handed to it while it keeps getting work.
// It ends after writerIdle without work, at once when maxIdleWriters
// already wait, or when w is stopped.
func (w *writers) work(t *writeTurn) {
	defer w.exit()
	t.run()
	var tick *time.Ticker
	worked := true
	for {
		if w.idle.Add(1) > maxIdleWriters {
			w.idle.Add(-1)
			return
		}
		if tick == nil {
			tick = time.NewTicker(writerIdle)
			defer tick.Stop()
		}
		select {
		case t = <-w.handoff:
			w.idle.Add(-1)
			t.run()
			worked = true
			continue
		case <-tick.C:
			w.idle.Add(-1)
		case <-w.stop:
			w.idle.Add(-1)
			return
		}
		if !worked {
			return
		}
		worked = false
	}
}

func (w *writers) exit() {
	w.mu.Lock()
	w.running--
	if w.running == 0 {
		w.ended.Broadcast()
	}
	w.mu.Unlock()
}

// stopAndWait ends the waiting writers and waits for every writer to end.
// A turn kicked afterwards still runs, on a writer that then ends at once.
func (w *writers) stopAndWait() {
	close(w.stop)
	w.mu.Lock()
	for w.running > 0 {
		w.ended.Wait()
	}
	w.mu.Unlock()
}

func (t *writeTurn) run() {
	t.mu.Lock()
	defer t.mu.Unlock()
	// A Kick from now on starts another run, which waits for mu: whatever
	// was queued before this point is written by this one.
	if t.state.CompareAndSwap(turnPending, turnIdle) {
		t.write()
	}
}

// Lock takes the output for the caller. It reports false, holding
// nothing, when the connection ended.
func (t *writeTurn) Lock() bool {
	t.mu.Lock()
	if t.state.Load() == turnClosed {
		t.mu.Unlock()
		return false
	}
	return true
}

// Unlock gives the output back.
func (t *writeTurn) Unlock() { t.mu.Unlock() }

// Close ends the turn: later Kicks do nothing and Lock fails. The caller
// holds mu.
func (t *writeTurn) Close() { t.state.Store(turnClosed) }
