package edge

import "time"

// WindowTimer is the timer of a conflation window, for tests that drive
// windows by hand.
type WindowTimer = windowTimer

// SetConflateClock makes the conflation windows of h's sessions use the
// timers that after makes instead of time.AfterFunc's.
func SetConflateClock(h *Hub, after func(time.Duration, func()) WindowTimer) { h.afterFunc = after }
