package telemetry_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"go.opentelemetry.io/otel/metric"

	"github.com/edgeworks/edge/transports/telemetry"
)

// An edge without OTLP variables serves its metrics at /metrics only, and
// its tracer provider is a no-op.
func Example() {
	ctx := context.Background()
	tel, err := telemetry.New(ctx, telemetry.Options{
		Env: func(string) string { return "" }, // as if no OTEL_* variable were set
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tel.Shutdown(ctx)
	fmt.Println(tel.Describe())

	requests, err := tel.Meters.Meter("example").Int64Counter("edge.example.requests", metric.WithUnit("{request}"))
	if err != nil {
		fmt.Println(err)
		return
	}
	requests.Add(ctx, 2)

	rec := httptest.NewRecorder()
	tel.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "edge_example_requests_total") {
			fmt.Print(line)
		}
	}
	// Output:
	// metrics at /metrics; OTLP off (set OTEL_EXPORTER_OTLP_ENDPOINT)
	// edge_example_requests_total 2
}
