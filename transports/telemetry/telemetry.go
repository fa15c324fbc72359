package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Options configure New. The zero value is valid: service "edge", the
// process environment, no extra span exporters, no logging.
type Options struct {
	// ServiceName is the resource's service.name. "" means
	// OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES,
	// else "edge".
	ServiceName string
	// Instance is the resource's service.instance.id (the node's name).
	// "" means none, unless OTEL_RESOURCE_ATTRIBUTES gives one.
	Instance string
	// Env looks up the OTEL_* variables listed in the package
	// documentation. nil means os.Getenv; tests pass a map's lookup.
	Env func(string) string
	// SpanExporters receive every sampled span synchronously, as it ends,
	// in addition to OTLP. Any of them makes Tracers an SDK provider.
	// Shutdown shuts them down.
	SpanExporters []sdktrace.SpanExporter
	// Log receives a debug record of what New set up. nil discards.
	Log *slog.Logger
}

// Telemetry holds the SDK providers of one edge. Its fields are set by New
// and must not be changed; they are safe for concurrent use. Whoever calls
// New calls Shutdown once, after the last use of the providers.
type Telemetry struct {
	// Meters is an SDK meter provider with a Prometheus reader that feeds
	// Handler, and an OTLP periodic reader when OTLP metrics are on.
	Meters metric.MeterProvider
	// Tracers is an SDK tracer provider when OTLP traces are on or
	// Options.SpanExporters is not empty; otherwise a no-op provider,
	// whose spans never record and cost next to nothing.
	Tracers trace.TracerProvider
	// Propagator reads and writes W3C tracecontext (traceparent,
	// tracestate) and baggage headers.
	Propagator propagation.TextMapPropagator
	// Handler serves Meters in the Prometheus text format, for GET
	// /metrics, from a Prometheus registry that belongs to this Telemetry
	// alone.
	Handler http.Handler

	meters   *sdkmetric.MeterProvider
	tracers  *sdktrace.TracerProvider // nil when Tracers is a no-op
	describe string
}

// New builds the providers that o and the environment ask for; ctx is used
// while building only. An invalid variable is an error that names it, with
// every other problem found; no provider is left running then. New does
// not connect to any collector: exporters connect when they first export,
// and report failures to the OTel global error handler
// (otel.SetErrorHandler), which cmd/edge owns.
func New(ctx context.Context, o Options) (*Telemetry, error) {
	get := o.Env
	if get == nil {
		get = os.Getenv
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &env{get: get}
	sdkDisabled := e.boolean("OTEL_SDK_DISABLED")
	metricsOTLP := readSignal(e, "METRICS", []string{"otlp", "prometheus", "none"}, sdkDisabled)
	tracesOTLP := readSignal(e, "TRACES", []string{"otlp", "none"}, sdkDisabled)
	interval := e.millis("OTEL_METRIC_EXPORT_INTERVAL")
	metricTimeout := e.millis("OTEL_METRIC_EXPORT_TIMEOUT")
	sampler, samplerName := readSampler(e)
	res, err := newResource(ctx, e, o)
	if envErr := errors.Join(e.errs...); envErr != nil {
		return nil, envErr
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}

	reg := prometheus.NewRegistry()
	prom, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	meterOpts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	if metricsOTLP.on {
		exp, err := metricsOTLP.metricExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP metric exporter: %w", err)
		}
		// WithInterval and WithTimeout ignore 0, leaving the SDK defaults.
		meterOpts = append(meterOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp,
			sdkmetric.WithInterval(interval), sdkmetric.WithTimeout(metricTimeout))))
	}
	t := &Telemetry{
		meters: sdkmetric.NewMeterProvider(meterOpts...),
		Propagator: propagation.NewCompositeTextMapPropagator(
			propagation.TraceContext{}, propagation.Baggage{}),
		Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	}
	t.Meters = t.meters

	if tracesOTLP.on || len(o.SpanExporters) > 0 {
		traceOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(sampler)}
		if tracesOTLP.on {
			exp, err := tracesOTLP.spanExporter(ctx)
			if err != nil {
				return nil, errors.Join(fmt.Errorf("telemetry: OTLP span exporter: %w", err), t.meters.Shutdown(ctx))
			}
			traceOpts = append(traceOpts, sdktrace.WithBatcher(exp))
		}
		for _, exp := range o.SpanExporters {
			traceOpts = append(traceOpts, sdktrace.WithSyncer(exp))
		}
		t.tracers = sdktrace.NewTracerProvider(traceOpts...)
		t.Tracers = t.tracers
	} else {
		t.Tracers = noop.NewTracerProvider()
	}

	t.describe = describe(metricsOTLP, tracesOTLP, t.tracers != nil, samplerName)
	log.Debug("telemetry: OpenTelemetry SDK installed", "otlp_metrics", metricsOTLP.String(),
		"otlp_traces", tracesOTLP.String(), "sampler", samplerName, "extra_span_exporters", len(o.SpanExporters))
	return t, nil
}

// describe is Describe's line.
func describe(m, t otlpSignal, tracing bool, sampler string) string {
	var b strings.Builder
	b.WriteString("metrics at /metrics; ")
	switch {
	case m.on && t.on && m.protocol == t.protocol && m.shown == t.shown:
		fmt.Fprintf(&b, "OTLP %s to %s (metrics, traces)", m.protocol, m.shown)
	case !m.on && !t.on && m.off == t.off:
		fmt.Fprintf(&b, "OTLP off (%s)", m.off)
	default:
		fmt.Fprintf(&b, "OTLP %s, %s", m, t)
	}
	if tracing && sampler != defaultSampler {
		fmt.Fprintf(&b, "; traces sampled %s", sampler)
	}
	return b.String()
}

// Describe returns one line for the start-up banner and --print-config:
// where metrics and traces go, over which protocol, and the sampler when
// it is not the default. It never includes header values or the user
// info of an endpoint URL.
func (t *Telemetry) Describe() string { return t.describe }

// Shutdown flushes what the exporters still hold and stops them: traces
// first, then metrics. ctx bounds the whole; without a deadline the SDK's
// own export timeouts apply. Call it once, after the last span ends; the
// providers record nothing afterwards, and Handler serves no metrics.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.tracers != nil {
		if err := t.tracers.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: shut down traces: %w", err))
		}
	}
	if err := t.meters.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("telemetry: shut down metrics: %w", err))
	}
	return errors.Join(errs...)
}
