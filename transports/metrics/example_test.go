package metrics_test

import (
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/edgeworks/edge/transports/metrics"
)

// The server records through Metrics; the status page reads Snapshot.
func Example() {
	m, err := metrics.New(sdkmetric.NewMeterProvider(), metrics.Observed{})
	if err != nil {
		panic(err)
	}
	m.Connected(metrics.SSE, 1)
	m.Published(metrics.HTTP)
	m.Delivered(metrics.SSE, 1)
	s := m.Snapshot()
	fmt.Println(s.Connections[metrics.SSE], s.Published, s.Delivered)
	// Output: 1 1 1
}
