package main

import (
	"bufio"
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	collmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP collector on loopback that hands over the
// names of the metrics and spans (with their trace ids) it receives.
type otlpReceiver struct {
	*httptest.Server
	metrics chan string
	spans   chan [2]string // name, trace id
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{metrics: make(chan string, 4096), spans: make(chan [2]string, 4096)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(io.LimitReader(body, 16<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch req.URL.Path {
		case "/v1/metrics":
			var m collmetrics.ExportMetricsServiceRequest
			if err := proto.Unmarshal(b, &m); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			for _, rm := range m.ResourceMetrics {
				for _, sm := range rm.ScopeMetrics {
					for _, mt := range sm.Metrics {
						send(r.metrics, mt.Name)
					}
				}
			}
			out, _ := proto.Marshal(&collmetrics.ExportMetricsServiceResponse{})
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.Write(out)
		case "/v1/traces":
			var tr colltrace.ExportTraceServiceRequest
			if err := proto.Unmarshal(b, &tr); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			for _, rs := range tr.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					for _, s := range ss.Spans {
						send(r.spans, [2]string{s.Name, hex.EncodeToString(s.TraceId)})
					}
				}
			}
			out, _ := proto.Marshal(&colltrace.ExportTraceServiceResponse{})
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.Write(out)
		default:
			http.NotFound(w, req)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

// send hands v over unless the test stopped listening and the buffer is full.
func send[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// The binary, given the standard OTEL_EXPORTER_OTLP_* variables, pushes
// its metrics and a trace of each publish to an OTLP collector; its JSON
// debug log carries the request id a proxy sent.
func TestOTLPExportAndRequestIDs(t *testing.T) {
	recv := startOTLPReceiver(t)
	cmd := exec.Command(buildEdge(t), "--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug")
	cmd.Env = append(os.Environ(),
		"OTEL_EXPORTER_OTLP_ENDPOINT="+recv.URL,
		"OTEL_METRIC_EXPORT_INTERVAL=200",
		"OTEL_BSP_SCHEDULE_DELAY=100",
	)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	first, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no banner: %v; stderr: %s", err, stderr.String())
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(first), "edge is ready at ")
	if !ok {
		t.Fatalf("banner %q", first)
	}
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/publish?channel=otlp", strings.NewReader("traced"))
	req.Header.Set("traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
	req.Header.Set("X-Request-Id", "proxy-req-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != "proxy-req-42" {
		t.Fatalf("publish: %d, X-Request-Id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}

	deadline := time.After(20 * time.Second)
	wantSpans := map[string]bool{"publish": false, "store": false}
	wantMetric := "edge.messages.published"
	gotMetric := false
	for !gotMetric || !wantSpans["publish"] || !wantSpans["store"] {
		select {
		case name := <-recv.metrics:
			gotMetric = gotMetric || name == wantMetric
		case s := <-recv.spans:
			if _, ok := wantSpans[s[0]]; ok && s[1] == traceID {
				wantSpans[s[0]] = true
			}
		case <-deadline:
			t.Fatalf("the collector got metric %s: %v, spans in trace %s: %v; stderr:\n%s", wantMetric, gotMetric, traceID, wantSpans, stderr.String())
		}
	}
	// The start-up lines and the request's debug line, from the process's
	// stderr (copied in the background, so polled).
	want := []string{`"msg":"telemetry: metrics at /metrics; OTLP http/protobuf to ` + recv.URL, `"request_id":"proxy-req-42"`}
	logDeadline := time.Now().Add(10 * time.Second)
	for _, w := range want {
		for !strings.Contains(stderr.String(), w) {
			if time.Now().After(logDeadline) {
				t.Fatalf("no log line with %s:\n%s", w, stderr.String())
			}
			time.Sleep(20 * time.Millisecond) // polling the process's output, not synchronisation
		}
	}
}
