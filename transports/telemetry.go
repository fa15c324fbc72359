package transports

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/transports/metrics"
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

// publish stores a message from src and counts it. With tracing on it is
// the span "publish" (a child of the caller's traceparent, if any) around
// the span "store"; the hub's "fanout" span is a child of "store" where the
// broker relays synchronously (the embedded store), so the trace shows
// store and delivery work.
func (s *Server) publish(ctx context.Context, src metrics.Source, channel, event string, data []byte) (edge.ID, error) {
	if s.tracer == nil {
		id, err := s.broker.Publish(ctx, channel, event, data)
		if err == nil {
			s.metrics.Published(src)
		}
		return id, err
	}
	kind := trace.SpanKindServer
	if src != metrics.HTTP {
		kind = trace.SpanKindInternal
	}
	ctx, span := s.tracer.Start(ctx, "publish", trace.WithSpanKind(kind), trace.WithAttributes(
		attribute.String("edge.source", src.String()),
		attribute.String("edge.channel", channel),
		attribute.Int("edge.payload_bytes", len(data)),
	))
	defer span.End()
	storeCtx, store := s.tracer.Start(ctx, "store")
	id, err := s.broker.Publish(storeCtx, channel, event, data)
	if err != nil {
		store.RecordError(err)
		store.SetStatus(codes.Error, "store failed")
		store.End()
		span.SetStatus(codes.Error, "store failed")
		return id, err
	}
	store.End()
	span.SetAttributes(attribute.String("edge.message_id", id.String()))
	s.metrics.Published(src)
	return id, nil
}
