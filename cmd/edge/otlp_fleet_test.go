package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/resume/redistest"
)

// Two edge processes on one Redis, both exporting to one OTLP collector:
// a publish on A with a traceparent yields A's publish and store spans and
// B's fanout span, all in the caller's trace. A has no subscriber, so the
// fanout is B's.
func TestOTLPTraceAcrossProcesses(t *testing.T) {
	recv := startOTLPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	srv := redistest.Start(t)
	bin := buildEdge(t)
	a := startNode(t, bin, "--redis", srv.URL())
	b := startNode(t, bin, "--redis", srv.URL())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	readUntil := streamLines(ctx, t, b+"/v1/subscribe?channel=traced")
	readUntil("id: ") // live

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	pub, _ := http.NewRequestWithContext(ctx, http.MethodPost, a+"/v1/publish?channel=traced", strings.NewReader("across"))
	pub.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	presp, err := http.DefaultClient.Do(pub)
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	if presp.StatusCode != http.StatusOK {
		t.Fatalf("publish: %d", presp.StatusCode)
	}
	if got := readUntil("data: "); got != "data: across" {
		t.Fatalf("B's subscriber got %q", got)
	}

	want := map[string]bool{"publish": false, "store": false, "fanout": false}
	deadline := time.After(20 * time.Second)
	for !want["publish"] || !want["store"] || !want["fanout"] {
		select {
		case s := <-recv.spans:
			if _, ok := want[s[0]]; ok && s[1] == traceID {
				want[s[0]] = true
			}
		case <-deadline:
			t.Fatalf("spans in trace %s the collector got: %v", traceID, want)
		}
	}
}
