package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/net/http/httpguts"
)

// The OTLP protocols, as OTEL_EXPORTER_OTLP_PROTOCOL names them.
const (
	protoHTTP = "http/protobuf"
	protoGRPC = "grpc"
)

// exportTimeout is the exporters' own default time limit per export, passed
// explicitly so that a process variable cannot override Options.Env.
const exportTimeout = 10 * time.Second

// otlpSignal is the OTLP export of one signal (metrics or traces) as the
// environment asks for it.
type otlpSignal struct {
	name     string // "metrics" or "traces"
	on       bool
	off      string // why not, when !on: for Describe
	protocol string // protoHTTP or protoGRPC
	endpoint string // URL handed to the exporter; for HTTP it has the signal's path
	shown    string // the endpoint as the operator gave it, without user info
	headers  map[string]string
	insecure bool
	gzip     bool
	timeout  time.Duration
}

// readSignal reads the OTLP variables of one signal: sig is "METRICS" or
// "TRACES", exporters the values its OTEL_<sig>_EXPORTER accepts. Every
// variable is checked even when the signal ends up off.
func readSignal(e *env, sig string, exporters []string, sdkDisabled bool) otlpSignal {
	const p = "OTEL_EXPORTER_OTLP_"
	s := otlpSignal{name: strings.ToLower(sig)}
	selector := "OTEL_" + sig + "_EXPORTER"
	chosen := e.list(selector, exporters...)

	name, v := e.first(p+sig+"_PROTOCOL", p+"PROTOCOL")
	s.protocol = e.oneOf(name, v, protoHTTP, protoHTTP, protoGRPC)
	s.headers = e.pairs(httpguts.ValidHeaderFieldName, p+sig+"_HEADERS", p+"HEADERS")
	insecure := e.boolean(p+sig+"_INSECURE", p+"INSECURE")
	name, v = e.first(p+sig+"_COMPRESSION", p+"COMPRESSION")
	s.gzip = e.oneOf(name, v, "none", "gzip", "none") == "gzip"
	s.timeout = e.millis(p+sig+"_TIMEOUT", p+"TIMEOUT")
	if s.timeout == 0 {
		s.timeout = exportTimeout
	}

	name, v = e.first(p+sig+"_ENDPOINT", p+"ENDPOINT")
	var u *url.URL
	if v != "" {
		var err error
		if u, err = url.Parse(v); err != nil {
			e.failf("%s is not a URL", name)
		} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			e.failf("%s=%q: want an http:// or https:// URL", name, u.Redacted())
			u = nil
		}
	}

	explicit := slices.Contains(chosen, "otlp") && !slices.Contains(chosen, "none")
	switch {
	case sdkDisabled:
		s.off = "OTEL_SDK_DISABLED=true"
		return s
	case chosen != nil && !explicit:
		s.off = selector + "=" + e.str(selector)
		return s
	case u == nil && !explicit:
		s.off = "set " + p + "ENDPOINT"
		return s
	case u == nil:
		u = &url.URL{Scheme: "http", Host: "localhost:4318"}
		if s.protocol == protoGRPC {
			u.Host = "localhost:4317"
		}
		name = p + "ENDPOINT"
	}
	s.on = true
	s.shown = u.Redacted()
	s.insecure = insecure || u.Scheme == "http"
	if s.protocol == protoHTTP && name == p+"ENDPOINT" {
		u = u.JoinPath("v1", s.name)
	}
	s.endpoint = u.String()
	return s
}

// String describes the signal's export for Describe, without headers.
func (s otlpSignal) String() string {
	if !s.on {
		return s.name + " off (" + s.off + ")"
	}
	return fmt.Sprintf("%s %s to %s", s.name, s.protocol, s.shown)
}

// metricExporter returns an OTLP metric exporter for s. The settings read
// from the environment are passed as options, which win over the process
// environment that the exporter also reads by itself. (A gRPC exporter has
// no option for "no compression"; it is the default.)
func (s otlpSignal) metricExporter(ctx context.Context) (sdkmetric.Exporter, error) {
	if s.protocol == protoGRPC {
		opts := []otlpmetricgrpc.Option{
			otlpmetricgrpc.WithEndpointURL(s.endpoint),
			otlpmetricgrpc.WithHeaders(s.headers),
			otlpmetricgrpc.WithTimeout(s.timeout),
		}
		if s.gzip {
			opts = append(opts, otlpmetricgrpc.WithCompressor("gzip"))
		}
		if s.insecure {
			opts = append(opts, otlpmetricgrpc.WithInsecure())
		}
		return otlpmetricgrpc.New(ctx, opts...)
	}
	compression := otlpmetrichttp.NoCompression
	if s.gzip {
		compression = otlpmetrichttp.GzipCompression
	}
	opts := []otlpmetrichttp.Option{
		otlpmetrichttp.WithEndpointURL(s.endpoint),
		otlpmetrichttp.WithHeaders(s.headers),
		otlpmetrichttp.WithTimeout(s.timeout),
		otlpmetrichttp.WithCompression(compression),
	}
	if s.insecure {
		opts = append(opts, otlpmetrichttp.WithInsecure())
	}
	return otlpmetrichttp.New(ctx, opts...)
}

// spanExporter returns an OTLP span exporter for s, configured as
// metricExporter's.
func (s otlpSignal) spanExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	if s.protocol == protoGRPC {
		opts := []otlptracegrpc.Option{
			otlptracegrpc.WithEndpointURL(s.endpoint),
			otlptracegrpc.WithHeaders(s.headers),
			otlptracegrpc.WithTimeout(s.timeout),
		}
		if s.gzip {
			opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
		}
		if s.insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	compression := otlptracehttp.NoCompression
	if s.gzip {
		compression = otlptracehttp.GzipCompression
	}
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpointURL(s.endpoint),
		otlptracehttp.WithHeaders(s.headers),
		otlptracehttp.WithTimeout(s.timeout),
		otlptracehttp.WithCompression(compression),
	}
	if s.insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	return otlptracehttp.New(ctx, opts...)
}
