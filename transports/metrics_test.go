package transports_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/transports"
)

// promSample is one sample line of the Prometheus text format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

var promLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrape GETs /metrics and parses its samples.
func scrape(t *testing.T, e *testEdge) []promSample {
	t.Helper()
	resp, err := http.Get(e.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var out []promSample
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		s := promSample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				t.Fatalf("bad metrics line %q", line)
			}
			s.name = line[:i]
			for _, m := range promLabel.FindAllStringSubmatch(line[i+1:j], -1) {
				s.labels[m[1]] = m[2]
			}
			rest = strings.TrimSpace(line[j+1:])
		} else {
			s.name, rest, _ = strings.Cut(line, " ")
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			t.Fatalf("bad metrics line %q: %v", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// value sums the samples of name whose labels include those given as
// key, value pairs; found is false when there is none.
func value(samples []promSample, name string, labels ...string) (sum float64, found bool) {
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		sum, found = sum+s.value, true
	}
	return sum, found
}

// waitValue scrapes e until the samples of name with labels sum to want.
// Counts of delivered messages need it: the edge adds to them once a write
// returns, which can be after the client has read the frame.
func waitValue(t *testing.T, e *testEdge, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, ok := value(scrape(t, e), name, labels...)
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s%v = %v (found %v), want %v", name, labels, got, ok, want)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func wantValue(t *testing.T, samples []promSample, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := value(samples, name, labels...)
	if !ok || got != want {
		t.Errorf("%s%v = %v (found %v), want %v", name, labels, got, ok, want)
	}
}

// TestMetrics subscribes over each transport, publishes, and checks what
// GET /metrics says about it.
func TestMetrics(t *testing.T) {
	e := startEdge(t, transports.Config{})
	const channel = "metrics-secret.channel"
	const n = 5

	sse := openSSE(t, e.url("/v1/subscribe", "channel", channel), nil)
	sse.lastID()
	ws := dialWS(t, e.wsURL("channel", channel))
	ws.readControl("subscribed")

	type pollResult struct {
		ans pollAnswer
		err error
	}
	polled := make(chan pollResult, 1)
	go func() {
		var r pollResult
		resp, err := http.Get(e.url("/v1/subscribe", "channel", channel, "transport", "poll"))
		if err != nil {
			r.err = err
		} else {
			r.err = json.NewDecoder(resp.Body).Decode(&r.ans)
			resp.Body.Close()
		}
		polled <- r
	}()
	waitValue(t, e, 1, "edge_connections", "transport", "poll")
	m := scrape(t, e)
	wantValue(t, m, 1, "edge_connections", "transport", "ws")
	wantValue(t, m, 1, "edge_connections", "transport", "sse")
	wantValue(t, m, 3, "edge_sessions")
	for _, tr := range []string{"ws", "sse", "poll"} {
		wantValue(t, m, 1, "edge_subscriptions", "transport", tr)
		for _, name := range []string{"edge_queue_messages", "edge_queue_bytes", "edge_queue_max_bytes"} {
			if _, ok := value(m, name, "transport", tr); !ok {
				t.Errorf("no %s{transport=%q}", name, tr)
			}
		}
	}

	var ids []string
	for i := range n {
		ids = append(ids, e.publish(channel, fmt.Sprintf(`{"n":%d}`, i)))
	}
	for range n {
		sse.next()
	}
	ws.readMessages(n)
	r := <-polled
	if r.err != nil || len(r.ans.Messages) == 0 {
		t.Fatalf("long-poll: %+v, %v", r.ans, r.err)
	}

	waitValue(t, e, n, "edge_messages_delivered_total", "transport", "sse")
	waitValue(t, e, n, "edge_messages_delivered_total", "transport", "ws")
	waitValue(t, e, float64(len(r.ans.Messages)), "edge_messages_delivered_total", "transport", "poll")
	m = scrape(t, e)
	wantValue(t, m, 0, "edge_connections", "transport", "poll")
	wantValue(t, m, 1, "edge_connections", "transport", "sse")
	wantValue(t, m, n, "edge_messages_published_total", "source", "http")
	if c, _ := value(m, "edge_publish_to_deliver_seconds_count", "transport", "poll"); c == 0 {
		t.Error(`edge_publish_to_deliver_seconds_count{transport="poll"} = 0`)
	}
	// SSE and WebSocket writes woken together share a writer's chunk,
	// one of which samples the latency, at random: publish until each
	// transport has a sample (each has a chance of one in two per message).
	for i := 0; ; i++ {
		sampled := 0
		for _, tr := range []string{"sse", "ws"} {
			if c, _ := value(m, "edge_publish_to_deliver_seconds_count", "transport", tr); c > 0 {
				sampled++
			}
		}
		if sampled == 2 {
			break
		}
		if i == 100 {
			t.Fatalf("no latency sample of SSE or WebSocket after %d more messages", i)
		}
		ids = append(ids, e.publish(channel, fmt.Sprintf(`{"n":%d}`, len(ids))))
		sse.next()
		ws.readMessages(1)
		m = scrape(t, e)
	}
	if c, _ := value(m, "edge_publish_to_deliver_seconds_bucket", "le", "+Inf"); c == 0 {
		t.Error("the latency histogram has no +Inf bucket count")
	}
	for _, name := range []string{"edge_resumes_total", "edge_gaps_total"} {
		if v, _ := value(m, name); v != 0 { // not exported before the first
			t.Errorf("%s = %v, want 0", name, v)
		}
	}
	wantValue(t, m, 0, "edge_slow_consumer_disconnects_total")
	wantValue(t, m, 0, "edge_auth_refusals_total")
	for _, s := range m {
		for k, v := range s.labels {
			if strings.Contains(v, "metrics-secret") {
				t.Errorf("%s has label %s=%q, a channel name", s.name, k, v)
			}
		}
	}

	t.Run("resume", func(t *testing.T) {
		again := openSSE(t, e.url("/v1/subscribe", "channel", channel, "since", ids[0]), nil)
		for range len(ids) - 1 {
			again.next()
		}
		again.lastID()
		waitValue(t, e, float64(2*len(ids)-1), "edge_messages_delivered_total", "transport", "sse")
		wantValue(t, scrape(t, e), 1, "edge_resumes_total", "transport", "sse")
	})

	t.Run("method", func(t *testing.T) {
		resp, err := http.Post(e.url("/metrics"), "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var ea errorAnswer
		if resp.StatusCode != http.StatusMethodNotAllowed || json.Unmarshal(body, &ea) != nil || ea.Error.Code == "" {
			t.Errorf("POST /metrics: %d %s", resp.StatusCode, body)
		}
	})
}

// TestMetricsPerServer checks that two servers in one process keep
// metrics of their own.
func TestMetricsPerServer(t *testing.T) {
	a, b := startEdge(t, transports.Config{}), startEdge(t, transports.Config{})
	a.publish("one", "x")
	wantValue(t, scrape(t, a), 1, "edge_messages_published_total", "source", "http")
	if v, _ := value(scrape(t, b), "edge_messages_published_total"); v != 0 {
		t.Errorf("the second server counts %v publishes, want 0", v)
	}
}
