package transports

import (
	"net/http"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Telemetry is where a server's metrics and traces go. The server uses
// the OpenTelemetry API only; the caller installs the SDK (cmd/edge does,
// through package transports/telemetry). The zero value records metrics
// on the global meter provider, makes no spans and serves no /metrics.
type Telemetry struct {
	Meters     metric.MeterProvider          // nil: otel.GetMeterProvider()
	Tracers    trace.TracerProvider          // nil or a no-op provider: no spans, at no cost
	Propagator propagation.TextMapPropagator // reads traceparent from publish requests; nil: none
	Metrics    http.Handler                  // served at GET /metrics; nil: 404
}

// Option configures New.
type Option func(*Server)

// WithTelemetry sends the server's metrics and traces to t.
func WithTelemetry(t Telemetry) Option {
	return func(s *Server) { s.telemetry = t }
}

// tracerName is the instrumentation scope of the server's spans.
const tracerName = "github.com/edgeworks/edge/transports"

// newTracer returns the server's tracer, or nil when spans would go
// nowhere, so that the publish path skips tracing entirely.
func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	if _, off := tp.(noop.TracerProvider); off {
		return nil
	}
	return tp.Tracer(tracerName)
}
