package telemetry_test

import (
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // the receiver accepts gzip-compressed exports
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/proto"
)

// export is one OTLP export request as a receiver decoded it.
type export struct {
	path    string      // the HTTP path, or the gRPC method
	header  http.Header // HTTP headers, or gRPC metadata
	gzip    bool        // the body came compressed
	metrics *colmetricpb.ExportMetricsServiceRequest
	traces  *coltracepb.ExportTraceServiceRequest
}

// receiver is a minimal OTLP collector on loopback: it decodes what the
// exporters send and hands it to the test.
type receiver struct {
	endpoint string      // for OTEL_EXPORTER_OTLP_ENDPOINT
	got      chan export // exports, in arrival order
	dropped  atomic.Int64
}

// deliver hands ex to the test, dropping it when the test has stopped
// reading: a receiver never holds an exporter up.
func (r *receiver) deliver(ex export) {
	select {
	case r.got <- ex:
	default:
		r.dropped.Add(1)
	}
}

// waitFor returns the first export that ok accepts, failing the test after
// a deadline.
func (r *receiver) waitFor(t *testing.T, what string, ok func(export) bool) export {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ex := <-r.got:
			if ok(ex) {
				return ex
			}
		case <-deadline:
			t.Fatalf("no export with %s arrived in 10 s (%d dropped)", what, r.dropped.Load())
		}
	}
}

// startHTTPReceiver serves OTLP/HTTP (protobuf, optionally gzip) on
// 127.0.0.1: a path that ends in "metrics" gets metrics, one that ends in
// "traces" gets spans.
func startHTTPReceiver(t *testing.T) *receiver {
	r := &receiver{got: make(chan export, 64)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ex := export{path: req.URL.Path, header: req.Header.Clone()}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			ex.gzip = true
			body = gz
		}
		b, err := io.ReadAll(io.LimitReader(body, 16<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var resp proto.Message
		switch {
		case strings.HasSuffix(req.URL.Path, "metrics"):
			ex.metrics = new(colmetricpb.ExportMetricsServiceRequest)
			err = proto.Unmarshal(b, ex.metrics)
			resp = new(colmetricpb.ExportMetricsServiceResponse)
		case strings.HasSuffix(req.URL.Path, "traces"):
			ex.traces = new(coltracepb.ExportTraceServiceRequest)
			err = proto.Unmarshal(b, ex.traces)
			resp = new(coltracepb.ExportTraceServiceResponse)
		default:
			http.NotFound(w, req)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.deliver(ex)
		out, err := proto.Marshal(resp)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	r.endpoint = srv.URL
	return r
}

// metricsService and traceService are the two OTLP/gRPC collector
// services of a gRPC receiver.
type metricsService struct {
	colmetricpb.UnimplementedMetricsServiceServer
	r *receiver
}

func (s metricsService) Export(ctx context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	s.r.deliver(grpcExport(ctx, export{metrics: req}))
	return new(colmetricpb.ExportMetricsServiceResponse), nil
}

type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	r *receiver
}

func (s traceService) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.r.deliver(grpcExport(ctx, export{traces: req}))
	return new(coltracepb.ExportTraceServiceResponse), nil
}

// grpcExport fills ex's path and header from the call's method and metadata.
func grpcExport(ctx context.Context, ex export) export {
	ex.path, _ = grpc.Method(ctx)
	ex.header = http.Header{}
	md, _ := metadata.FromIncomingContext(ctx)
	for k, vs := range md {
		ex.header[http.CanonicalHeaderKey(k)] = vs
	}
	if c, ok := ctx.Value(compressionKey{}).(*string); ok {
		ex.gzip = *c == "gzip"
	}
	return ex
}

// compressionKey is the context key of the *string in which
// compressionStats records a call's request compression.
type compressionKey struct{}

// compressionStats is a gRPC stats handler that records the compression of
// each incoming call, which gRPC keeps out of the metadata.
type compressionStats struct{}

func (compressionStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, compressionKey{}, new(string))
}

func (compressionStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		if c, ok := ctx.Value(compressionKey{}).(*string); ok {
			*c = h.Compression
		}
	}
}

func (compressionStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (compressionStats) HandleConn(context.Context, stats.ConnStats) {}

// startGRPCReceiver serves OTLP/gRPC without TLS on 127.0.0.1.
func startGRPCReceiver(t *testing.T) *receiver {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{got: make(chan export, 64), endpoint: "http://" + l.Addr().String()}
	s := grpc.NewServer(grpc.StatsHandler(compressionStats{}))
	colmetricpb.RegisterMetricsServiceServer(s, metricsService{r: r})
	coltracepb.RegisterTraceServiceServer(s, traceService{r: r})
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-served; err != nil {
			t.Errorf("grpc receiver: %v", err)
		}
	})
	return r
}
