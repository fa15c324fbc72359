package transports

import (
	"sync"
	"sync/atomic"
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
// so that under load a run reuses a stack that has already grown to the
// depth of a write instead of growing a new goroutine's on every burst.
//
// Whoever holds mu owns the connection's output: the goroutine running
// write, or a caller of Lock (the handler while it writes history, the
// WebSocket reader while it joins a channel).
type writeTurn struct {
	mu    sync.Mutex
	state atomic.Int32
	// sample is set, holding mu, for a run that is to sample the
	// publish-to-deliver latency: one of each chunk a writer is handed
	// (see writers.work), and every run by KickHere.
	sample bool
	write  func() // runs with mu held; set before the first Kick
}

// Kick makes sure write runs after this call, on one of w's writer
// goroutines: one waiting for work, or a new one. It never blocks.
func (t *writeTurn) Kick(w *writers) {
	if t.state.CompareAndSwap(turnIdle, turnPending) {
		w.hand([]*writeTurn{t})
	}
}

// KickHere is Kick for a caller that may block: it runs write itself
// instead of handing it to a writer.
func (t *writeTurn) KickHere() {
	if t.state.CompareAndSwap(turnIdle, turnPending) {
		t.run(true)
	}
}

// run runs write if a Kick asked for it, with sample set as given.
func (t *writeTurn) run(sample bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// A Kick from now on starts another run, which waits for mu: whatever
	// was queued before this point is written by this one.
	if t.state.CompareAndSwap(turnPending, turnIdle) {
		t.sample = sample
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
