package telemetry_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"

	"github.com/edgeworks/edge/transports/telemetry"
)

// envOf is an Options.Env that reads m.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// newTelemetry builds a Telemetry and shuts it down when the test ends.
func newTelemetry(t *testing.T, o telemetry.Options) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.New(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, tel) })
	return tel
}

// shutdown shuts tel down within 10 s.
func shutdown(t *testing.T, tel *telemetry.Telemetry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// The secret in the test's OTLP headers, which must never show in
// Describe or errors.
const secret = "s3cret-key"

// Metrics and spans reach a real OTLP receiver, over HTTP and gRPC, with
// the headers, endpoint paths and compression the environment asks for.
func TestOTLPExport(t *testing.T) {
	type want struct {
		metricsPath, tracesPath string
		gzip                    bool
		describe                string // %[1]s is the endpoint given to New
	}
	cases := []struct {
		name  string
		start func(*testing.T) *receiver
		env   func(endpoint string) map[string]string
		want  want
	}{{
		name:  "http base path",
		start: startHTTPReceiver,
		env: func(ep string) map[string]string {
			return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep + "/otlp/"}
		},
		want: want{"/otlp/v1/metrics", "/otlp/v1/traces", false,
			"metrics at /metrics; OTLP http/protobuf to %[1]s (metrics, traces)"},
	}, {
		name:  "http per-signal endpoints gzip",
		start: startHTTPReceiver,
		env: func(ep string) map[string]string {
			return map[string]string{
				"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": ep + "/collector/metrics",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":  ep + "/collector/traces",
				"OTEL_EXPORTER_OTLP_PROTOCOL":         "http/protobuf",
				"OTEL_EXPORTER_OTLP_COMPRESSION":      "gzip",
			}
		},
		want: want{"/collector/metrics", "/collector/traces", true,
			"metrics at /metrics; OTLP metrics http/protobuf to %[1]s/collector/metrics, traces http/protobuf to %[1]s/collector/traces"},
	}, {
		name:  "grpc http endpoint",
		start: startGRPCReceiver,
		env: func(ep string) map[string]string {
			return map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": ep,
				"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			}
		},
		want: want{"/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
			"/opentelemetry.proto.collector.trace.v1.TraceService/Export", false,
			"metrics at /metrics; OTLP grpc to %[1]s (metrics, traces)"},
	}, {
		name:  "grpc insecure per-signal protocol gzip",
		start: startGRPCReceiver,
		env: func(ep string) map[string]string {
			ep = strings.Replace(ep, "http://", "https://", 1)
			return map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT":         ep,
				"OTEL_EXPORTER_OTLP_INSECURE":         "true",
				"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
				"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL":  "GRPC",
				"OTEL_EXPORTER_OTLP_COMPRESSION":      "gzip",
			}
		},
		want: want{"/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
			"/opentelemetry.proto.collector.trace.v1.TraceService/Export", true,
			"metrics at /metrics; OTLP grpc to %[1]s (metrics, traces)"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.start(t)
			env := c.env(r.endpoint)
			env["OTEL_EXPORTER_OTLP_HEADERS"] = "x-tenant=blue,authorization=Bearer%20" + secret
			env["OTEL_METRIC_EXPORT_INTERVAL"] = "100"
			tel, err := telemetry.New(t.Context(), telemetry.Options{
				ServiceName: "edge-test", Instance: "node-1", Env: envOf(env),
			})
			if err != nil {
				t.Fatal(err)
			}
			shut := false
			t.Cleanup(func() {
				if !shut {
					shutdown(t, tel)
				}
			})

			wantDescribe := fmt.Sprintf(c.want.describe, env["OTEL_EXPORTER_OTLP_ENDPOINT"])
			if env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "" {
				wantDescribe = fmt.Sprintf(c.want.describe, r.endpoint)
			}
			if got := tel.Describe(); got != wantDescribe || strings.Contains(got, secret) {
				t.Errorf("Describe() = %q, want %q", got, wantDescribe)
			}

			counter, err := tel.Meters.Meter("test").Int64Counter("edge.test.exports")
			if err != nil {
				t.Fatal(err)
			}
			counter.Add(t.Context(), 3, metric.WithAttributes(attribute.String("transport", "ws")))
			_, span := tel.Tracers.Tracer("test").Start(t.Context(), "publish")
			span.End()

			// The periodic reader exports every 100 ms; the span waits in the
			// batch processor until Shutdown flushes it.
			ex := r.waitFor(t, "edge.test.exports = 3", func(ex export) bool {
				return ex.metrics != nil && counted(ex, "edge.test.exports") == 3
			})
			checkExport(t, ex, c.want.metricsPath, c.want.gzip)
			shut = true
			shutdown(t, tel)
			ex = r.waitFor(t, "span publish", func(ex export) bool {
				return ex.traces != nil && hasSpan(ex, "publish")
			})
			checkExport(t, ex, c.want.tracesPath, c.want.gzip)
		})
	}
}

// checkExport checks the path, headers, compression and resource of ex.
func checkExport(t *testing.T, ex export, path string, gzip bool) {
	t.Helper()
	if ex.path != path {
		t.Errorf("export to %q, want %q", ex.path, path)
	}
	if got := ex.header.Get("Authorization"); got != "Bearer "+secret {
		t.Errorf("Authorization = %q, want the one from OTEL_EXPORTER_OTLP_HEADERS", got)
	}
	if got := ex.header.Get("X-Tenant"); got != "blue" {
		t.Errorf("X-Tenant = %q, want blue", got)
	}
	if ex.gzip != gzip {
		t.Errorf("gzip = %v, want %v", ex.gzip, gzip)
	}
	var resources []*resourcepb.Resource
	for _, rm := range ex.metrics.GetResourceMetrics() {
		resources = append(resources, rm.GetResource())
	}
	for _, rs := range ex.traces.GetResourceSpans() {
		resources = append(resources, rs.GetResource())
	}
	if len(resources) == 0 {
		t.Fatal("export without resource")
	}
	for _, res := range resources {
		attrs := stringAttrs(res.GetAttributes())
		if attrs["service.name"] != "edge-test" || attrs["service.instance.id"] != "node-1" {
			t.Errorf("resource %v, want service.name edge-test and service.instance.id node-1", attrs)
		}
	}
}

// stringAttrs maps the string attributes of kvs.
func stringAttrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string)
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	return m
}

// counted is the sum of the data points of the counter name in ex, -1 when
// ex does not have it.
func counted(ex export, name string) int64 {
	n := int64(-1)
	for _, rm := range ex.metrics.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				if m.GetName() != name {
					continue
				}
				n = 0
				for _, dp := range m.GetSum().GetDataPoints() {
					n += dp.GetAsInt()
				}
			}
		}
	}
	return n
}

// hasSpan says whether ex has a span called name.
func hasSpan(ex export, name string) bool {
	for _, rs := range ex.traces.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				if s.GetName() == name {
					return true
				}
			}
		}
	}
	return false
}

// Describe says where each signal goes, names a sampler other than the
// default, and neither it nor the log shows credentials. (No span is started:
// nothing is exported, so nothing needs to listen.)
func TestDescribe(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{{
		name: "traces only",
		env: map[string]string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector.example:4318/otlp/v1/traces",
			"OTEL_TRACES_SAMPLER":                "parentbased_traceidratio",
			"OTEL_TRACES_SAMPLER_ARG":            "0.25",
		},
		want: "metrics at /metrics; OTLP metrics off (set OTEL_EXPORTER_OTLP_ENDPOINT), " +
			"traces http/protobuf to https://collector.example:4318/otlp/v1/traces; traces sampled parentbased_traceidratio 0.25",
	}, {
		name: "exporter otlp without endpoint",
		env: map[string]string{
			"OTEL_TRACES_EXPORTER":        "otlp",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		},
		want: "metrics at /metrics; OTLP metrics off (set OTEL_EXPORTER_OTLP_ENDPOINT), traces grpc to http://localhost:4317",
	}, {
		name: "password in endpoint",
		env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "https://edge:" + secret + "@collector.example",
			"OTEL_METRICS_EXPORTER":       "none",
			"OTEL_TRACES_SAMPLER":         "always_on",
		},
		want: "metrics at /metrics; OTLP metrics off (OTEL_METRICS_EXPORTER=none), " +
			"traces http/protobuf to https://edge:xxxxx@collector.example; traces sampled always_on",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.env["OTEL_EXPORTER_OTLP_HEADERS"] = "authorization=" + secret
			var log bytes.Buffer
			tel := newTelemetry(t, telemetry.Options{
				Env: envOf(c.env),
				Log: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})),
			})
			if got := tel.Describe(); got != c.want {
				t.Errorf("Describe() = %q, want %q", got, c.want)
			}
			if !strings.Contains(log.String(), "SDK installed") || strings.Contains(log.String(), secret) {
				t.Errorf("logged %q", log.String())
			}
		})
	}
}

// Without OTLP variables nothing is pushed and tracing is a no-op; the
// variables that turn OTLP off say so in Describe.
func TestOTLPOff(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{{
		name: "no variables",
		want: "metrics at /metrics; OTLP off (set OTEL_EXPORTER_OTLP_ENDPOINT)",
	}, {
		name: "sdk disabled",
		env: map[string]string{
			"OTEL_SDK_DISABLED":           "TRUE",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
			"OTEL_TRACES_EXPORTER":        "otlp",
		},
		want: "metrics at /metrics; OTLP off (OTEL_SDK_DISABLED=true)",
	}, {
		name: "exporters none",
		env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
			"OTEL_METRICS_EXPORTER":       "prometheus",
			"OTEL_TRACES_EXPORTER":        "none",
		},
		want: "metrics at /metrics; OTLP metrics off (OTEL_METRICS_EXPORTER=prometheus), traces off (OTEL_TRACES_EXPORTER=none)",
	}, {
		name: "sampler without tracing",
		env:  map[string]string{"OTEL_TRACES_SAMPLER": "always_off", "OTEL_SDK_DISABLED": "false"},
		want: "metrics at /metrics; OTLP off (set OTEL_EXPORTER_OTLP_ENDPOINT)",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tel := newTelemetry(t, telemetry.Options{Env: envOf(c.env)})
			if got := tel.Describe(); got != c.want {
				t.Errorf("Describe() = %q, want %q", got, c.want)
			}
			_, span := tel.Tracers.Tracer("test").Start(t.Context(), "publish")
			defer span.End()
			if span.IsRecording() {
				t.Error("span is recording without any span exporter")
			}
		})
	}
}

// The handler serves what the meters record in the Prometheus text
// format, under the names edge has always exported, and each Telemetry
// has a registry of its own.
func TestPrometheusHandler(t *testing.T) {
	a := newTelemetry(t, telemetry.Options{Env: envOf(nil)})
	b := newTelemetry(t, telemetry.Options{Env: envOf(nil), ServiceName: "other"})
	meter := a.Meters.Meter("github.com/edgeworks/edge/transports")
	published, err := meter.Int64Counter("edge.messages.published", metric.WithUnit("{message}"))
	if err != nil {
		t.Fatal(err)
	}
	connections, err := meter.Int64UpDownCounter("edge.connections", metric.WithUnit("{connection}"))
	if err != nil {
		t.Fatal(err)
	}
	latency, err := meter.Float64Histogram("edge.publish_to_deliver", metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.01))
	if err != nil {
		t.Fatal(err)
	}
	published.Add(t.Context(), 1, metric.WithAttributes(attribute.String("source", "http")))
	connections.Add(t.Context(), 2, metric.WithAttributes(attribute.String("transport", "ws")))
	latency.Record(t.Context(), 0.005, metric.WithAttributes(attribute.String("transport", "sse")))

	got := scrape(t, a.Handler)
	for _, want := range []string{
		`edge_messages_published_total{source="http"} 1`,
		`edge_connections{transport="ws"} 2`,
		`edge_publish_to_deliver_seconds_bucket{transport="sse",le="0.01"} 1`,
		`target_info{service_name="edge"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %s in\n%s", want, got)
		}
	}
	if strings.Contains(got, "otel_scope") {
		t.Errorf("scope labels in\n%s", got)
	}
	if other := scrape(t, b.Handler); strings.Contains(other, "edge_") || !strings.Contains(other, `service_name="other"`) {
		t.Errorf("second Telemetry serves\n%s", other)
	}
}

// scrape GETs h as Prometheus would.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	return rec.Body.String()
}

// remoteParent is a context carrying a remote parent span, sampled or not.
func remoteParent(sampled bool) context.Context {
	var flags trace.TraceFlags
	if sampled {
		flags = trace.FlagsSampled
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3},
		SpanID:     trace.SpanID{4, 5, 6},
		TraceFlags: flags,
		Remote:     true,
	})
	return trace.ContextWithRemoteSpanContext(context.Background(), sc)
}

// Options.SpanExporters receive spans without OTLP, and the sampler
// variables decide which spans record.
func TestSampler(t *testing.T) {
	cases := []struct {
		sampler, arg string
		parent       context.Context
		recording    bool
	}{
		{"", "", context.Background(), true},
		{"", "", remoteParent(false), false},
		{"", "", remoteParent(true), true},
		{"always_on", "", remoteParent(false), true},
		{"always_off", "", context.Background(), false},
		{"always_off", "", remoteParent(true), false},
		{"traceidratio", "0", context.Background(), false},
		{"traceidratio", "1", context.Background(), true},
		{"parentbased_always_off", "", context.Background(), false},
		{"parentbased_always_off", "", remoteParent(true), true},
		{"parentbased_traceidratio", "0", context.Background(), false},
		{"parentbased_traceidratio", "0", remoteParent(true), true},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s(%s) parent sampled %v", c.sampler, c.arg,
			trace.SpanContextFromContext(c.parent).IsSampled())
		t.Run(name, func(t *testing.T) {
			mem := tracetest.NewInMemoryExporter()
			tel := newTelemetry(t, telemetry.Options{
				SpanExporters: []sdktrace.SpanExporter{mem},
				Env: envOf(map[string]string{
					"OTEL_TRACES_SAMPLER":     c.sampler,
					"OTEL_TRACES_SAMPLER_ARG": c.arg,
				}),
			})
			_, span := tel.Tracers.Tracer("test").Start(c.parent, "publish")
			if span.IsRecording() != c.recording {
				t.Errorf("recording = %v, want %v", span.IsRecording(), c.recording)
			}
			span.End()
			spans := mem.GetSpans()
			if c.recording && (len(spans) != 1 || spans[0].Name != "publish") {
				t.Errorf("exported %v, want the span", spans)
			}
			if !c.recording && len(spans) != 0 {
				t.Errorf("exported %v, want nothing", spans)
			}
		})
	}
}

// service.name comes from Options, else OTEL_SERVICE_NAME, else
// OTEL_RESOURCE_ATTRIBUTES, else "edge".
func TestResource(t *testing.T) {
	cases := []struct {
		name, option string
		env          map[string]string
		want         map[string]string
	}{
		{"default", "", nil, map[string]string{"service.name": "edge"}},
		{"option wins", "edge-a", map[string]string{"OTEL_SERVICE_NAME": "b"}, map[string]string{"service.name": "edge-a"}},
		{"OTEL_SERVICE_NAME", "", map[string]string{
			"OTEL_SERVICE_NAME":        "b",
			"OTEL_RESOURCE_ATTRIBUTES": "service.name=c",
		}, map[string]string{"service.name": "b"}},
		{"OTEL_RESOURCE_ATTRIBUTES", "", map[string]string{
			"OTEL_RESOURCE_ATTRIBUTES": " service.name = c , deployment.environment.name=eu%2Cwest,service.instance.id=n7",
		}, map[string]string{"service.name": "c", "deployment.environment.name": "eu,west", "service.instance.id": "n7"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := tracetest.NewInMemoryExporter()
			tel := newTelemetry(t, telemetry.Options{
				ServiceName: c.option, Env: envOf(c.env), SpanExporters: []sdktrace.SpanExporter{mem},
			})
			_, span := tel.Tracers.Tracer("test").Start(t.Context(), "publish")
			span.End()
			spans := mem.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans", len(spans))
			}
			got := map[string]string{}
			for _, kv := range spans[0].Resource.Attributes() {
				got[string(kv.Key)] = kv.Value.Emit()
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (resource %v)", k, got[k], v, got)
				}
			}
			if got["telemetry.sdk.language"] != "go" {
				t.Errorf("no telemetry.sdk attributes in %v", got)
			}
		})
	}
}

// An incoming traceparent becomes the parent of the spans the edge starts.
func TestPropagator(t *testing.T) {
	mem := tracetest.NewInMemoryExporter()
	tel := newTelemetry(t, telemetry.Options{Env: envOf(nil), SpanExporters: []sdktrace.SpanExporter{mem}})
	h := http.Header{}
	h.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.Set("Baggage", "tenant=blue")
	ctx := tel.Propagator.Extract(t.Context(), propagation.HeaderCarrier(h))
	sc := trace.SpanContextFromContext(ctx)
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" ||
		!sc.IsSampled() || !sc.IsRemote() {
		t.Fatalf("extracted %+v", sc)
	}
	_, span := tel.Tracers.Tracer("test").Start(ctx, "publish")
	span.End()
	spans := mem.GetSpans()
	if len(spans) != 1 || spans[0].Parent.SpanID() != sc.SpanID() || spans[0].SpanContext.TraceID() != sc.TraceID() {
		t.Fatalf("spans %v, want one child of %v", spans, sc)
	}

	out := http.Header{}
	tel.Propagator.Inject(ctx, propagation.HeaderCarrier(out))
	if out.Get("Traceparent") != h.Get("Traceparent") || out.Get("Baggage") != "tenant=blue" {
		t.Errorf("injected %v", out)
	}
}

// A variable with a value edge does not support stops New, with an error
// that names the variable once and never shows a header's value.
func TestInvalidEnv(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"protocol", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			[]string{`OTEL_EXPORTER_OTLP_PROTOCOL="http/json"`, "http/protobuf, grpc"}},
		{"per-signal protocol", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://127.0.0.1:1",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift",
		}, []string{`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="thrift"`, "http/protobuf, grpc"}},
		{"endpoint without scheme", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"},
			[]string{"OTEL_EXPORTER_OTLP_ENDPOINT", "http:// or https://"}},
		{"endpoint not a URL", map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://a b:1\x7f"},
			[]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is not a URL"}},
		{"headers without =", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "x=1," + secret},
			[]string{"OTEL_EXPORTER_OTLP_HEADERS: entry 2"}},
		{"header value not encoded", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization=" + secret + "%zz"},
			[]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS: entry 1 (authorization)"}},
		{"header name", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "api key=" + secret},
			[]string{`OTEL_EXPORTER_OTLP_HEADERS: entry 1: "api key" is not a valid name`}},
		{"bool", map[string]string{"OTEL_SDK_DISABLED": "yes"},
			[]string{`OTEL_SDK_DISABLED="yes"`, "true, false"}},
		{"exporter", map[string]string{"OTEL_TRACES_EXPORTER": "otlp,zipkin"},
			[]string{`OTEL_TRACES_EXPORTER="zipkin"`, "otlp, none"}},
		{"sampler", map[string]string{"OTEL_TRACES_SAMPLER": "jaeger_remote"},
			[]string{`OTEL_TRACES_SAMPLER="jaeger_remote"`, "parentbased_always_on"}},
		{"sampler arg", map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
			[]string{`OTEL_TRACES_SAMPLER_ARG="2"`}},
		{"interval", map[string]string{"OTEL_METRIC_EXPORT_INTERVAL": "1s"},
			[]string{`OTEL_METRIC_EXPORT_INTERVAL="1s"`, "milliseconds"}},
		{"timeout", map[string]string{"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "-5"},
			[]string{`OTEL_EXPORTER_OTLP_METRICS_TIMEOUT="-5"`}},
		{"compression", map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"},
			[]string{`OTEL_EXPORTER_OTLP_COMPRESSION="zstd"`, "gzip, none"}},
		{"resource attributes", map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "a=1,=2"},
			[]string{"OTEL_RESOURCE_ATTRIBUTES: entry 2"}},
		{"all at once", map[string]string{
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
			"OTEL_TRACES_SAMPLER":         "sometimes",
		}, []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_TRACES_SAMPLER"}},
		{"general variable reported once", map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "br"},
			[]string{"telemetry: OTEL_EXPORTER_OTLP_COMPRESSION=\"br\": want one of gzip, none"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tel, err := telemetry.New(t.Context(), telemetry.Options{Env: envOf(c.env)})
			if err == nil {
				shutdown(t, tel)
				t.Fatal("New accepted the environment")
			}
			for _, want := range c.want {
				if n := strings.Count(err.Error(), want); n != 1 {
					t.Errorf("error %q says %q %d times, want once", err, want, n)
				}
			}
			t.Log(err)
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows a header value", err)
			}
		})
	}
}
