package edge

import "time"

// SetDeltaLinger sets how long h keeps a channel's delta state after its
// last delta subscriber left (DeltaLinger by default).
func SetDeltaLinger(h *Hub, d time.Duration) { h.deltaLinger = d }
