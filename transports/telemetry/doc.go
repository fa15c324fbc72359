// Package telemetry is the one place in edge that installs the
// OpenTelemetry SDK. Everything else uses the OTel API only and receives
// the providers that New builds: cmd/edge calls New at start-up and
// Shutdown when it exits, and tests call it with their own environment.
//
// Metrics are always served in the Prometheus text format by
// Telemetry.Handler (GET /metrics), from a Prometheus registry of their
// own, and are also pushed over OTLP when the standard variables ask for
// it. Traces go over OTLP when configured, and to any extra span exporters
// a caller passes; without either, the tracer provider is a no-op one and
// tracing costs nothing. Incoming context is read with the W3C tracecontext
// and baggage propagators.
//
// # Environment
//
// New reads these variables through Options.Env (os.Getenv by default).
// An unrecognised value of any of them is an error that names the
// variable, the value (never for headers) and what is accepted. The
// per-signal form (METRICS or TRACES) wins over the general one.
//
//	OTEL_SDK_DISABLED                       true: no OTLP export at all (/metrics keeps working)
//	OTEL_METRICS_EXPORTER                   comma list of otlp, prometheus, none (default otlp)
//	OTEL_TRACES_EXPORTER                    comma list of otlp, none (default otlp)
//	OTEL_EXPORTER_OTLP[_SIGNAL]_ENDPOINT    http:// or https:// URL; setting it turns OTLP on
//	OTEL_EXPORTER_OTLP[_SIGNAL]_PROTOCOL    http/protobuf (default) or grpc
//	OTEL_EXPORTER_OTLP[_SIGNAL]_HEADERS     k=v,k2=v2 with percent-encoded values
//	OTEL_EXPORTER_OTLP[_SIGNAL]_INSECURE    true: no TLS whatever the endpoint's scheme
//	OTEL_EXPORTER_OTLP[_SIGNAL]_COMPRESSION gzip or none
//	OTEL_EXPORTER_OTLP[_SIGNAL]_TIMEOUT     milliseconds per export (default 10000)
//	OTEL_METRIC_EXPORT_INTERVAL             milliseconds between OTLP metric exports (default 60000)
//	OTEL_METRIC_EXPORT_TIMEOUT              milliseconds per OTLP metric export (default 30000)
//	OTEL_TRACES_SAMPLER                     always_on, always_off, traceidratio, parentbased_always_on (default),
//	                                        parentbased_always_off, parentbased_traceidratio
//	OTEL_TRACES_SAMPLER_ARG                 the ratio, 0 to 1, for the traceidratio samplers (default 1)
//	OTEL_SERVICE_NAME                       resource service.name, unless Options.ServiceName is set
//	OTEL_RESOURCE_ATTRIBUTES                k=v,k2=v2 resource attributes, percent-encoded values
//
// As the specification says, a general OTEL_EXPORTER_OTLP_ENDPOINT is a
// base URL to which OTLP/HTTP appends /v1/metrics or /v1/traces, while a
// per-signal endpoint is used as it is. A signal goes over OTLP when its
// endpoint is set, or when its OTEL_*_EXPORTER names otlp explicitly (then
// to the default http://localhost:4318, or :4317 for grpc).
//
// The exporters and the SDK read a few more standard variables themselves,
// from the process environment and never through Options.Env: the TLS
// files (OTEL_EXPORTER_OTLP[_SIGNAL]_CERTIFICATE, _CLIENT_CERTIFICATE,
// _CLIENT_KEY), OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE,
// OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION, the batch span
// processor's OTEL_BSP_* and the span limits OTEL_SPAN_*_LIMIT.
// OTEL_PROPAGATORS and OTEL_LOGS_EXPORTER are not supported.
package telemetry
