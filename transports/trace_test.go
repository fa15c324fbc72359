package transports_test

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

// TestPublishTrace publishes with a traceparent and checks the spans an
// in-memory exporter gets: publish (a child of the caller's span), store
// under it, and the fan-out to the channel's subscribers under store.
func TestPublishTrace(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	cfg := transports.Config{}.WithDefaults()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := serveOn(t, cfg, resume.NewMemory(resume.MemoryConfig{}), ln, transports.WithTelemetry(testTelemetry(t, spans)))
	sub := openSSE(t, e.url("/v1/subscribe", "channel", "traced"), nil)
	sub.lastID()

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest(http.MethodPost, e.url("/v1/publish", "channel", "traced"), strings.NewReader("hello"))
	req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("publish: %d, X-Request-Id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}
	if ev := sub.next(); ev.Data != "hello" {
		t.Fatalf("subscriber got %+v", ev)
	}

	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans.GetSpans() {
		byName[s.Name] = s
	}
	publish, store, fanout := byName["publish"], byName["store"], byName["fanout"]
	for _, s := range []tracetest.SpanStub{publish, store, fanout} {
		if s.SpanContext.TraceID().String() != traceID {
			t.Fatalf("spans %v: want all in trace %s", names(spans.GetSpans()), traceID)
		}
	}
	if publish.Parent.SpanID().String() != parentID || !publish.Parent.IsRemote() || publish.SpanKind != trace.SpanKindServer {
		t.Errorf("publish: parent %v remote %v kind %v, want the caller's %s", publish.Parent.SpanID(), publish.Parent.IsRemote(), publish.SpanKind, parentID)
	}
	if store.Parent.SpanID() != publish.SpanContext.SpanID() {
		t.Errorf("store is not a child of publish")
	}
	if fanout.Parent.SpanID() != store.SpanContext.SpanID() {
		t.Errorf("fanout is not a child of store")
	}
	if !hasAttr(fanout.Attributes, attribute.Int("edge.subscribers", 1)) {
		t.Errorf("fanout attributes %v, want edge.subscribers=1", fanout.Attributes)
	}
	if !hasAttr(publish.Attributes, attribute.String("edge.channel", "traced")) || !hasAttr(publish.Attributes, attribute.String("edge.source", "http")) {
		t.Errorf("publish attributes %v", publish.Attributes)
	}

	t.Run("no traceparent", func(t *testing.T) {
		spans.Reset()
		e.publish("traced", "again")
		sub.next()
		for _, s := range spans.GetSpans() {
			if s.Name == "publish" && s.Parent.IsValid() {
				t.Errorf("a publish without traceparent has parent %v", s.Parent)
			}
		}
		if len(spans.GetSpans()) != 3 {
			t.Errorf("spans %v, want publish, store, fanout", names(spans.GetSpans()))
		}
	})

	t.Run("websocket publish", func(t *testing.T) {
		spans.Reset()
		ws := dialWS(t, e.wsURL("channel", "traced"))
		ws.readControl("subscribed")
		ws.send(map[string]any{"op": "publish", "channel": "traced", "data": "from ws", "ref": 1})
		// The ack (sent once the span ended) and the message come in either order.
		if a, b := ws.read(), ws.read(); a.Type != "published" && b.Type != "published" {
			t.Fatalf("frames %+v and %+v, want a published ack", a, b)
		}
		var got []string
		for _, s := range spans.GetSpans() {
			if s.Name == "publish" && hasAttr(s.Attributes, attribute.String("edge.source", "ws")) {
				got = append(got, s.Name)
			}
		}
		if len(got) != 1 {
			t.Errorf("spans %v, want one publish from ws", names(spans.GetSpans()))
		}
	})
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func hasAttr(attrs []attribute.KeyValue, want attribute.KeyValue) bool {
	for _, a := range attrs {
		if a == want {
			return true
		}
	}
	return false
}
