package metrics

import (
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
)

// TestRecordAllocs checks that what the delivery path records costs no
// allocation of the edge's own making beyond what the SDK does once per
// attribute set.
func TestRecordAllocs(t *testing.T) {
	m, _, err := New(Observed{})
	if err != nil {
		t.Fatal(err)
	}
	id, now := edge.ID{Ms: uint64(time.Now().UnixMilli())}, time.Now()
	m.Delivered(SSE, 1)
	m.Latency(SSE, id, now)
	if n := testing.AllocsPerRun(100, func() {
		m.Delivered(SSE, 3)
		m.Latency(SSE, id, now)
		m.Connected(WS, 1)
		m.Published(HTTP)
	}); n != 0 {
		t.Errorf("%v allocations per record, want 0", n)
	}
}
