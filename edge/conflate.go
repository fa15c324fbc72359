package edge

import (
	"fmt"
	"time"
)

// Conflation limits: a subscriber that asks to conflate (Session.SetConflate)
// gets, per window, only the newest message of each conflation key
// (Message.Key; messages without one share the channel's key).
const (
	// MinConflate is the shortest conflation window a subscriber may ask
	// for: 50 ms.
	MinConflate = 50 * time.Millisecond
	// MaxConflate is the longest conflation window: 60 s.
	MaxConflate = 60 * time.Second
	// MaxConflateKeys bounds the keys a conflating subscription holds
	// back in one window. A message of one more key ends the window at
	// once: the held messages are queued and the new one is held.
	MaxConflateKeys = 256
)

// ParseConflate parses a subscriber's conflation window: a Go duration
// ("500ms", "1s") from MinConflate to MaxConflate, or "0" for none. It
// returns an error wrapping ErrBadRequest for anything else (an empty
// string, garbage, a negative or out-of-range duration).
func ParseConflate(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: conflate=%q is not a duration (e.g. 500ms or 1s; 0 for none)", ErrBadRequest, Clip(s))
	}
	if d != 0 && (d < MinConflate || d > MaxConflate) {
		return 0, fmt.Errorf("%w: conflate=%s is out of range; use %v to %v, or 0 for none", ErrBadRequest, Clip(s), MinConflate, MaxConflate)
	}
	return d, nil
}

// windowTimer is the timer of a conflation window: a *time.Timer made by
// time.AfterFunc, or a test's.
type windowTimer interface {
	Reset(d time.Duration) bool
	Stop() bool
}

// afterFunc makes the timers of conflation windows.
func afterFunc(d time.Duration, f func()) windowTimer { return time.AfterFunc(d, f) }

// conflater is a conflating subscription's window. A live message that
// arrives while no window is open is queued at once and opens a window
// of every; one that arrives within the window replaces the held message
// of its key (held stays in id order: the replaced one is removed, the
// new one appended). When the window ends, the held messages are queued
// together, in id order, and a new window opens if there were any; else
// the window closes. So a key gets at most one delivery per window, and
// the newest message of each key is delivered within one window of its
// arrival. Its fields are guarded by the session's mu.
type conflater struct {
	every   time.Duration
	timer   windowTimer // made at the first window; one per subscription
	open    bool        // a window runs: live messages are held
	stopped bool        // the subscription ended: the timer does nothing
	held    []*Frame    // the newest message of each key in the window, in id order
	bytes   int         // the Size of held
}

// heldIndex returns the index of the held message of key, or -1. A
// window holds at most MaxConflateKeys messages: a scan without a map
// costs no allocation and, for the few keys of a dashboard, less time.
func (cf *conflater) heldIndex(key string) int {
	for i, f := range cf.held {
		if f.Key == key {
			return i
		}
	}
	return -1
}

// conflateLocked queues f, a live message of the conflating subscription
// cf, when no window is open (and opens one), or holds it until the
// window ends. It reports whether frames were queued. The caller holds
// mu.
func (s *Session) conflateLocked(cf *conflater, f *Frame) bool {
	if !cf.open {
		if !s.enqueueLocked(f) {
			return false
		}
		cf.open = true
		if cf.timer == nil {
			cf.timer = s.hub.afterFunc(cf.every, func() { s.windowEnd(cf) })
		} else {
			cf.timer.Reset(cf.every)
		}
		return true
	}
	queued := false
	if i := cf.heldIndex(f.Key); i >= 0 {
		old := cf.held[i]
		n := len(cf.held)
		copy(cf.held[i:], cf.held[i+1:])
		cf.held[n-1] = nil
		cf.held = cf.held[:n-1]
		cf.bytes -= old.Size()
		s.held -= old.Size()
	} else if len(cf.held) == MaxConflateKeys {
		if !s.flushLocked(cf) {
			return false
		}
		queued = true
	}
	if s.queued+s.held+f.Size() > s.maxBytes {
		s.closeLocked(DisconnectSlow)
		return false
	}
	cf.held = append(cf.held, f)
	cf.bytes += f.Size()
	s.held += f.Size()
	return queued
}

// flushLocked queues the held messages of cf in id order. It reports
// false when the session closed (over its budget). The caller holds mu.
func (s *Session) flushLocked(cf *conflater) bool {
	s.held -= cf.bytes
	cf.bytes = 0
	ok := true
	for _, f := range cf.held {
		if ok = s.enqueueLocked(f); !ok {
			break
		}
	}
	clear(cf.held)
	cf.held = cf.held[:0]
	return ok
}

// windowEnd runs on cf's timer when its window ends: the held messages
// are queued with one wake-up, and a new window opens if there were any.
func (s *Session) windowEnd(cf *conflater) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cf.stopped || s.closed.Load() != nil {
		return
	}
	if len(cf.held) == 0 {
		cf.open = false
		return
	}
	if s.flushLocked(cf) {
		cf.timer.Reset(cf.every)
	}
	s.signal()
}

// stopConflateLocked ends cf for good: its timer is stopped and its held messages
// dropped. The caller holds mu.
func (s *Session) stopConflateLocked(cf *conflater) {
	if cf == nil || cf.stopped {
		return
	}
	cf.stopped = true
	if cf.timer != nil {
		cf.timer.Stop()
	}
	s.held -= cf.bytes
	cf.bytes = 0
	clear(cf.held)
	cf.held = nil
}

// ConflatePage returns p with only the newest message of each conflation
// key (Message.Key within its channel), in id order, for a subscription
// that conflates (Joining.Conflate): a transport passes every catch-up
// page through it before writing it. Gap, Ahead and Last are kept, and so
// is the page's newest message, so a cursor moved by the page stays
// exact. p.Messages is not modified.
func ConflatePage(p Page) Page {
	p.Messages = latestPerKey(p.Messages, func(m *Message) *Message { return m })
	return p
}

// ConflateFrames returns frames with only the newest message of each
// conflation key of each channel, in their order; presence frames are
// kept. frames is not modified.
func ConflateFrames(frames []*Frame) []*Frame {
	return latestPerKey(frames, func(f **Frame) *Message {
		if (*f).IsPresence() {
			return nil
		}
		return &(*f).Message
	})
}

// latestPerKey returns the items whose message (msg; nil: always kept)
// is the last of its channel and key, in their order: items itself when
// none is dropped, else a new slice.
func latestPerKey[T any](items []T, msg func(*T) *Message) []T {
	if len(items) < 2 {
		return items
	}
	type chanKey struct{ channel, key string }
	seen := make(map[chanKey]struct{}, len(items))
	keep := make([]bool, len(items))
	n := 0
	for i := len(items) - 1; i >= 0; i-- {
		m := msg(&items[i])
		if m != nil {
			k := chanKey{m.Channel, m.Key}
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
		}
		keep[i] = true
		n++
	}
	if n == len(items) {
		return items
	}
	out := make([]T, 0, n)
	for i, k := range keep {
		if k {
			out = append(out, items[i])
		}
	}
	return out
}
