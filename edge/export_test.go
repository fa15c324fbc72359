package edge

import "time"

// SetDeltaLinger sets how long h keeps a channel's delta state after its
// last delta subscriber left (DeltaLinger by default).
func SetDeltaLinger(h *Hub, d time.Duration) { h.deltaLinger = d }

// WindowTimer is the timer of a conflation window, for tests that drive
// windows by hand.
type WindowTimer = windowTimer

// SetConflateClock makes the conflation windows of h's sessions use the
// timers that after makes instead of time.AfterFunc's.
func SetConflateClock(h *Hub, after func(time.Duration, func()) WindowTimer) { h.afterFunc = after }

// DashboardState is the dashboard payload of the delta tests and
// measurements: about 1 KiB of JSON state, a value of which changes at
// each update n.
var DashboardState = dashboardState
