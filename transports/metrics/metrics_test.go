package metrics

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/edgeworks/edge/edge"
)

// newTest returns metrics on an SDK provider of their own and the reader
// that collects them.
func newTest(t *testing.T, obs Observed) (*Metrics, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	m, err := New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), obs)
	if err != nil {
		t.Fatal(err)
	}
	return m, reader
}

// TestRecordAllocs checks that what the delivery path records costs no
// allocation of the edge's own making beyond what the SDK does once per
// attribute set.
func TestRecordAllocs(t *testing.T) {
	m, _ := newTest(t, Observed{})
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

// TestSnapshot checks the totals the status page reads, and the latency
// bucket each sample lands in.
func TestSnapshot(t *testing.T) {
	m, _ := newTest(t, Observed{})
	now := time.UnixMilli(1_000_000)
	m.Connected(WS, 1)
	m.Connected(WS, 1)
	m.Connected(Poll, 1)
	m.Connected(Poll, -1)
	m.Published(HTTP)
	m.Published(WebSocket)
	m.Delivered(SSE, 5)
	for _, ago := range []time.Duration{0, time.Millisecond, 3 * time.Millisecond, -time.Second, 2 * time.Minute} {
		m.Latency(SSE, edge.ID{Ms: uint64(now.Add(-ago).UnixMilli())}, now)
	}
	s := m.Snapshot()
	if s.Connections != [NumTransports]int64{WS: 2, SSE: 0, Poll: 0} || s.Published != 2 || s.Delivered != 5 {
		t.Errorf("snapshot %+v", s)
	}
	// 0, 0 (clock skew) and 1 ms are ≤ 1 ms; 3 ms is ≤ 5 ms; 2 min is above all.
	want := [numBuckets + 1]uint64{0: 3, 2: 1, numBuckets: 1}
	if s.Latency != want {
		t.Errorf("latency buckets %v, want %v", s.Latency, want)
	}
}

// TestStoreRoundTrip counts round trips by outcome: an error reply is
// counted apart from a round trip that got no answer.
func TestStoreRoundTrip(t *testing.T) {
	m, reader := newTest(t, Observed{})
	for _, err := range []error{
		nil,
		nil,
		errors.New("ERR no such key"),
		fmt.Errorf("%w: dial tcp: connection refused", edge.ErrUnavailable),
	} {
		m.StoreRoundTrip(context.Background(), time.Millisecond, err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if mt.Name != "edge.redis.commands" {
				continue
			}
			for _, dp := range mt.Data.(metricdata.Sum[int64]).DataPoints {
				v, _ := dp.Attributes.Value("outcome")
				got[v.AsString()] = dp.Value
			}
		}
	}
	if want := map[string]int64{"ok": 2, "error_reply": 1, "failed": 1}; !equalCounts(got, want) {
		t.Errorf("round trips by outcome %v, want %v", got, want)
	}
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
