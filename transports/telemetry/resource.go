package telemetry

import (
	"context"
	"runtime/debug"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// modulePath is edge's module, whose version becomes service.version.
const modulePath = "github.com/edgeworks/edge"

// newResource describes this edge to every exporter. Explicit Options win
// over the environment, which wins over the defaults: service.name is
// o.ServiceName, else OTEL_SERVICE_NAME, else service.name in
// OTEL_RESOURCE_ATTRIBUTES, else "edge". The resource package's own
// WithFromEnv reads the process environment only, so the variables are
// read here through e.
func newResource(ctx context.Context, e *env, o Options) (*resource.Resource, error) {
	fromEnv := e.pairs(nil, "OTEL_RESOURCE_ATTRIBUTES")
	attrs := make([]attribute.KeyValue, 0, len(fromEnv)+3)
	for k, v := range fromEnv {
		attrs = append(attrs, attribute.String(k, v))
	}
	name := o.ServiceName
	if name == "" {
		name = e.str("OTEL_SERVICE_NAME")
	}
	if name == "" && fromEnv[string(semconv.ServiceNameKey)] == "" {
		name = "edge"
	}
	if name != "" {
		attrs = append(attrs, semconv.ServiceName(name))
	}
	if o.Instance != "" {
		attrs = append(attrs, semconv.ServiceInstanceID(o.Instance))
	}
	if v := version(); v != "" && fromEnv[string(semconv.ServiceVersionKey)] == "" {
		attrs = append(attrs, semconv.ServiceVersion(v))
	}
	return resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...))
}

// version is the version of edge's module in this binary, "" when the
// build does not know it (a development build).
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	m := &info.Main
	if m.Path != modulePath {
		for _, d := range info.Deps {
			if d.Path == modulePath {
				m = d
			}
		}
	}
	if m.Path != modulePath || m.Version == "(devel)" {
		return ""
	}
	return m.Version
}
