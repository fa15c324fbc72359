package edge_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/edgeworks/edge/edge"
)

// The hub traces a delivery whose context carries a recording span (a
// publish relayed synchronously) as its internal child, and one whose
// context carries a sampled remote span context (a publish on another
// node) as its consumer child; it traces no other.
func TestHubFanoutSpan(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	h, b := newHub(t, edge.Config{})
	h.SetTracer(tp.Tracer("test"))

	remote := func(flags trace.TraceFlags) context.Context {
		return trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: flags,
		}))
	}
	local, publish := tp.Tracer("test").Start(context.Background(), "publish")
	defer publish.End()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		kind trace.SpanKind // unspecified: no span
	}{
		{"no span", context.Background(), trace.SpanKindUnspecified},
		{"a recording span", local, trace.SpanKindInternal},
		{"a sampled remote span context", remote(trace.FlagsSampled), trace.SpanKindConsumer},
		{"an unsampled remote span context", remote(0), trace.SpanKindUnspecified},
		{"a local span context that is not recording", trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(remote(trace.FlagsSampled)).WithRemote(false)), trace.SpanKindUnspecified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spans.Reset()
			b.relay(tc.ctx, edge.Message{Channel: "c", ID: edge.ID{Ms: 1}, Data: []byte("x")})
			got := spans.GetSpans()
			if tc.kind == trace.SpanKindUnspecified {
				if len(got) != 0 {
					t.Fatalf("spans %v, want none", got)
				}
				return
			}
			if len(got) != 1 || got[0].Name != "fanout" || got[0].SpanKind != tc.kind {
				t.Fatalf("spans %+v, want one fanout of kind %v", got, tc.kind)
			}
			if want := trace.SpanContextFromContext(tc.ctx); got[0].Parent.SpanID() != want.SpanID() || got[0].SpanContext.TraceID() != want.TraceID() {
				t.Fatalf("fanout's parent %v in trace %v, want %v", got[0].Parent.SpanID(), got[0].SpanContext.TraceID(), want)
			}
		})
	}
}
