package metrics

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/edgeworks/edge/edge"
)

// TestDocNamesEveryMetric checks that the package documentation lists
// every instrument New creates, under its Prometheus name, so a new metric
// cannot go undocumented.
func TestDocNamesEveryMetric(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	count := func() int64 { return 1 }
	m, reader := newTest(t, Observed{
		Sessions: count, SlowConsumers: count, AuthRefusals: count, Presence: count, Compressed: count,
		Hub:        func() (s [NumTransports]edge.SessionStats) { return s },
		CertExpiry: func() (time.Time, bool) { return time.Now().Add(time.Hour), true },
	})
	m.Latency(WS, edge.ID{Ms: uint64(time.Now().UnixMilli())}, time.Now())
	m.Resumed(WS)
	m.Gap()
	m.StoreRoundTrip(context.Background(), time.Millisecond, nil)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			names = append(names, mt.Name)
		}
	}
	if len(names) < 15 {
		t.Fatalf("collected %d instruments (%v), want every one", len(names), names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			// The Prometheus name starts with the instrument's, dots as
			// underscores; the exporter adds unit and _total suffixes.
			if prom := strings.ReplaceAll(name, ".", "_"); !strings.Contains(string(doc), "\t"+prom) {
				t.Errorf("transports/metrics/doc.go does not list %s (Prometheus %s…)", name, prom)
			}
		})
	}
}
