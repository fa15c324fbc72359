package transports_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

// spanRecorder is an in-memory span exporter that tells when spans come,
// so that a test waits for a span with a deadline.
type spanRecorder struct {
	*tracetest.InMemoryExporter
	more chan struct{}
}

func newSpanRecorder() *spanRecorder {
	return &spanRecorder{tracetest.NewInMemoryExporter(), make(chan struct{}, 1)}
}

// ExportSpans records spans.
func (r *spanRecorder) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := r.InMemoryExporter.ExportSpans(ctx, spans)
	select {
	case r.more <- struct{}{}:
	default:
	}
	return err
}

// waitFor returns the first recorded span named name in the trace, failing
// when none ends within a deadline.
func (r *spanRecorder) waitFor(t *testing.T, name, traceID string) tracetest.SpanStub {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		for _, s := range r.GetSpans() {
			if s.Name == name && s.SpanContext.TraceID().String() == traceID {
				return s
			}
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("no span %s in trace %s within 10s; spans: %v", name, traceID, names(r.GetSpans()))
		}
	}
}

// A publish's trace continues on every node that delivers it, on every
// Redis backend: the publish on node A (a child of its caller's
// traceparent) stores the message, and each node with subscribers, A
// itself and B, fans it out in a span "fanout" of consumer kind whose
// parent is A's "store" span. A publish its caller did not sample leaves
// no span on any node.
func TestFleetTrace(t *testing.T) {
	for _, backend := range contractBackends {
		if backend.name == "memory" {
			continue
		}
		t.Run(backend.name, func(t *testing.T) {
			use := backend.start(t)
			var nodes []*testEdge
			var spans []*spanRecorder
			for range 2 {
				cfg := resume.RedisConfig{}
				use(&cfg)
				r, err := resume.NewRedis(cfg, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				rec := newSpanRecorder()
				nodes = append(nodes, startEdgeWith(t, transports.Config{}, r,
					transports.WithTelemetry(testTelemetry(t, rec)), transports.WithStore(r)))
				spans = append(spans, rec)
			}
			var subs []*sseClient
			for _, n := range nodes {
				sub := openSSE(t, n.url("/v1/subscribe", "channel", "traced"), nil)
				sub.lastID()
				subs = append(subs, sub)
			}
			publish := func(traceparent, data string) {
				t.Helper()
				req, _ := http.NewRequest(http.MethodPost, nodes[0].url("/v1/publish", "channel", "traced"), strings.NewReader(data))
				req.Header.Set("traceparent", traceparent)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				drain(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("publish: %d", resp.StatusCode)
				}
				for i, sub := range subs {
					if ev := sub.next(); ev.Data != data {
						t.Fatalf("node %d's subscriber got %+v, want %q", i, ev, data)
					}
				}
			}

			const unsampled, traced = "0af7651916cd43dd8448eb211c80319c", "4bf92f3577b34da6a3ce929d0e0e4736"
			publish("00-"+unsampled+"-b7ad6b7169203331-00", "not sampled")
			publish("00-"+traced+"-00f067aa0ba902b7-01", "sampled")

			store := spans[0].waitFor(t, "store", traced)
			for i, rec := range spans {
				fanout := rec.waitFor(t, "fanout", traced)
				if fanout.Parent.SpanID() != store.SpanContext.SpanID() || !fanout.Parent.IsRemote() || fanout.SpanKind != trace.SpanKindConsumer {
					t.Errorf("node %d: fanout's parent %v (remote %v), kind %v; want node 0's store %v, remote, consumer",
						i, fanout.Parent.SpanID(), fanout.Parent.IsRemote(), fanout.SpanKind, store.SpanContext.SpanID())
				}
				if !hasAttr(fanout.Attributes, attribute.Int("edge.subscribers", 1)) {
					t.Errorf("node %d: fanout attributes %v, want edge.subscribers=1", i, fanout.Attributes)
				}
				// The sampled publish's fanout ended after the unsampled
				// one's would have: every span of the node is in.
				for _, s := range rec.GetSpans() {
					if s.SpanContext.TraceID().String() != traced {
						t.Errorf("node %d: span %s in trace %s, which its caller did not sample", i, s.Name, s.SpanContext.TraceID())
					}
				}
			}
		})
	}
}
