package status

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeworks/edge/transports/metrics"
)

// buckets returns bucket counts with counts[i] at index i.
func buckets(counts map[int]uint64) (b [len(metrics.LatencyBuckets) + 1]uint64) {
	for i, c := range counts {
		b[i] = c
	}
	return b
}

func TestPercentilesFromBuckets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		counts map[int]uint64
		want   *Percentiles // milliseconds
	}{
		{"no samples", nil, nil},
		{"all within the first millisecond", map[int]uint64{0: 10}, &Percentiles{0.5, 0.9, 0.99}},
		{"half and half", map[int]uint64{0: 50, 1: 50}, &Percentiles{1, 2.2, 2.47}},
		{"empty buckets below", map[int]uint64{3: 10}, &Percentiles{7.5, 9.5, 9.95}},
		{"a slow tail", map[int]uint64{0: 98, 9: 2}, &Percentiles{0.51, 0.918, 750}},
		{"above every bound", map[int]uint64{15: 4}, &Percentiles{60000, 60000, 60000}},
		{"one sample", map[int]uint64{6: 1}, &Percentiles{75, 95, 99.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := percentiles(buckets(tc.counts))
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPointFromTwoReadings(t *testing.T) {
	at := time.UnixMilli(1732270000000)
	prev := Reading{Store: "redis"}
	prev.Published, prev.Delivered = 100, 1000
	prev.Latency[0], prev.Latency[2] = 7, 3
	cur := Reading{Sessions: 6, Store: "redis", StoreErr: "backend unavailable: redis ping: EOF"}
	cur.Connections = [metrics.NumTransports]int64{metrics.WS: 3, metrics.SSE: 2, metrics.Poll: 1}
	cur.Published, cur.Delivered = 250, 1000
	cur.Latency = prev.Latency
	cur.Latency[0] += 20

	p := newPoint(prev, cur, 500*time.Millisecond, at)
	if p.Time != at.UnixMilli() || p.Sessions != 6 || p.Store != "redis" || p.StoreErr != cur.StoreErr {
		t.Fatalf("point %+v", p)
	}
	if p.Published != 300 || p.Delivered != 0 {
		t.Fatalf("published %v/s, delivered %v/s; want 300 and 0", p.Published, p.Delivered)
	}
	if want := (Percentiles{0.5, 0.9, 0.99}); p.Latency == nil || *p.Latency != want {
		t.Fatalf("latency %+v, want %+v (from the deltas only)", p.Latency, want)
	}
	b, _ := json.Marshal(p)
	const want = `{"t":1732270000000,"connections":{"poll":1,"sse":2,"ws":3},"sessions":6,"published":300,"delivered":0,"latency":{"p50":0.5,"p90":0.9,"p99":0.99},"store":"redis","store_error":"backend unavailable: redis ping: EOF"}`
	if string(b) != want {
		t.Fatalf("JSON\n%s\nwant\n%s", b, want)
	}

	idle := newPoint(cur, cur, time.Second, at)
	if idle.Published != 0 || idle.Latency != nil {
		t.Fatalf("no change: published %v/s, latency %+v", idle.Published, idle.Latency)
	}
	if b, _ := json.Marshal(idle); !strings.Contains(string(b), `"latency":null`) {
		t.Fatalf("no latency samples: %s", b)
	}
}

func TestRates(t *testing.T) {
	for _, tc := range []struct {
		name      string
		prev, cur uint64
		elapsed   time.Duration
		want      float64
	}{
		{"one second", 10, 52, time.Second, 42},
		{"a slow tick", 0, 30, 1500 * time.Millisecond, 20},
		{"rounded to hundredths", 0, 1, 3 * time.Second, 0.33},
		{"no time", 0, 5, 0, 0},
		{"a total that went down", 9, 3, time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rate(tc.prev, tc.cur, tc.elapsed); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRingIsBounded(t *testing.T) {
	s := New(func(context.Context) Reading { return Reading{} }, nil)
	for i := range 3*Points + 17 {
		s.add(Point{Time: int64(i)})
		if s.n > Points {
			t.Fatalf("the ring holds %d points", s.n)
		}
	}
	var got []Point
	s.mu.Lock()
	err := json.Unmarshal(s.historyLocked(), &got)
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != Points || got[0].Time != 2*Points+17 || got[Points-1].Time != 3*Points+16 {
		t.Fatalf("history: %d points from %d to %d", len(got), got[0].Time, got[len(got)-1].Time)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time != got[i-1].Time+1 {
			t.Fatalf("history out of order at %d: %d after %d", i, got[i].Time, got[i-1].Time)
		}
	}
}

// A viewer that does not keep up is dropped; the sampler never waits.
func TestSlowViewerIsDropped(t *testing.T) {
	s := New(func(context.Context) Reading { return Reading{} }, nil)
	slow, _, err := s.join()
	if err != nil {
		t.Fatal(err)
	}
	for i := range viewerBuffer + 5 {
		s.add(Point{Time: int64(i)})
	}
	n := 0
	for range slow {
		n++
	}
	if n != viewerBuffer {
		t.Fatalf("the slow viewer got %d samples before it was dropped, want %d", n, viewerBuffer)
	}
	if len(s.viewers) != 0 {
		t.Fatalf("%d viewers left", len(s.viewers))
	}
}

// event is one SSE event or comment.
type event struct{ name, data, comment, retry string }

// stream reads an event stream in a goroutine that ends with the body.
type stream struct {
	t      *testing.T
	resp   *http.Response
	events chan event
}

func open(t *testing.T, url string) *stream {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	st := &stream{t: t, resp: resp, events: make(chan event, 64)}
	if resp.StatusCode != http.StatusOK {
		return st
	}
	go func() {
		defer close(st.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev event
		for sc.Scan() {
			line := sc.Text()
			switch field, value, _ := strings.Cut(line, ": "); field {
			case "":
				if line == "" {
					if ev != (event{}) {
						st.events <- ev
					}
					ev = event{}
				} else {
					st.events <- event{comment: value}
				}
			case "event":
				ev.name = value
			case "data":
				ev.data = value
			case "retry":
				ev.retry = value
			}
		}
	}()
	return st
}

// next returns the next event, failing after a deadline; ok is false when
// the stream ended.
func (st *stream) next() (ev event, ok bool) {
	st.t.Helper()
	select {
	case ev, ok = <-st.events:
		return ev, ok
	case <-time.After(5 * time.Second):
		st.t.Fatal("no event within 5 s")
		return event{}, false
	}
}

func (st *stream) must(name string) event {
	st.t.Helper()
	ev, ok := st.next()
	if !ok || ev.name != name {
		st.t.Fatalf("got %+v (open %v), want an event %q", ev, ok, name)
	}
	return ev
}

// waitViewers waits until s has n viewers.
func waitViewers(t *testing.T, s *Status, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.viewers)
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d viewers, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond) // polling a count, with a deadline
	}
}

// counter is a fake server whose totals grow with every reading.
func counter() func(context.Context) Reading {
	var n atomic.Uint64
	return func(context.Context) Reading {
		i := n.Add(1)
		r := Reading{Sessions: 2, Store: "memory"}
		r.Connections[metrics.WS], r.Connections[metrics.SSE] = 1, 1
		r.Published, r.Delivered = 10*i, 20*i
		r.Latency[1] = 4 * i
		return r
	}
}

func TestEventsHistoryThenSamplesUntilRunStops(t *testing.T) {
	s := New(counter(), nil, WithInterval(10*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { s.Run(ctx); close(ran) }()
	defer func() { cancel(); <-ran }()
	srv := httptest.NewServer(http.HandlerFunc(s.ServeEvents))
	t.Cleanup(srv.Close) // after the streams' bodies close

	first := open(t, srv.URL)
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"} {
		if got := first.resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if ev, _ := first.next(); ev.retry != "2000" || ev.name != "" {
		t.Fatalf("first event %+v, want retry: 2000 alone", ev)
	}
	first.must("history")
	var last int64
	for range 3 {
		var p Point
		if err := json.Unmarshal([]byte(first.must("sample").data), &p); err != nil {
			t.Fatal(err)
		}
		if p.Time < last || p.Connections["ws"] != 1 || p.Store != "memory" || p.Latency == nil {
			t.Fatalf("sample %+v after t=%d", p, last)
		}
		last = p.Time
	}

	// A later viewer gets the samples so far, then the ones after them.
	second := open(t, srv.URL)
	second.next() // retry
	var history []Point
	if err := json.Unmarshal([]byte(second.must("history").data), &history); err != nil {
		t.Fatal(err)
	}
	if len(history) < 3 {
		t.Fatalf("history of %d points, want at least the 3 seen", len(history))
	}
	var next Point
	json.Unmarshal([]byte(second.must("sample").data), &next)
	if end := history[len(history)-1].Time; next.Time < end {
		t.Fatalf("a sample from t=%d after history up to t=%d", next.Time, end)
	}

	// When Run's context ends, every stream ends.
	cancel()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	for _, st := range []*stream{first, second} {
		for {
			if _, ok := st.next(); !ok {
				break
			}
		}
	}
	if after := open(t, srv.URL); after.resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a viewer after Run returned got %d, want 503", after.resp.StatusCode)
	}
}

func TestViewerLimit(t *testing.T) {
	s := New(counter(), nil)
	srv := httptest.NewServer(http.HandlerFunc(s.ServeEvents))
	t.Cleanup(srv.Close) // after the streams' bodies close
	var streams []*stream
	for range MaxViewers {
		st := open(t, srv.URL)
		st.next()
		st.must("history")
		streams = append(streams, st)
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		resp.Header.Get("Content-Type") != "application/json" || body.Error.Code != "rate_limited" || body.Error.Message == "" {
		t.Fatalf("viewer %d: %d, Retry-After %q, %+v", MaxViewers+1, resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	// A viewer that leaves frees its place.
	streams[0].resp.Body.Close()
	waitViewers(t, s, MaxViewers-1)
	again := open(t, srv.URL)
	if again.resp.StatusCode != http.StatusOK {
		t.Fatalf("after one left: %d", again.resp.StatusCode)
	}
}

func TestHeartbeatWhileIdle(t *testing.T) {
	s := New(counter(), nil, WithHeartbeat(20*time.Millisecond))
	srv := httptest.NewServer(http.HandlerFunc(s.ServeEvents))
	t.Cleanup(srv.Close) // after the streams' bodies close
	st := open(t, srv.URL)
	st.next()
	if h := st.must("history"); h.data != "[]" {
		t.Fatalf("history before any sample: %s", h.data)
	}
	for range 2 {
		if ev, _ := st.next(); ev.comment != "heartbeat" {
			t.Fatalf("got %+v, want a heartbeat comment", ev)
		}
	}
}

func TestPage(t *testing.T) {
	s := New(counter(), nil)
	w := httptest.NewRecorder()
	s.ServePage(w, httptest.NewRequest(http.MethodGet, "/status", nil))
	body := w.Body.String()
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(body, "<title>edge status</title>") {
		t.Fatalf("%d %q", w.Code, w.Header().Get("Content-Type"))
	}
	// Nothing from elsewhere: no src or href, no URL but SVG's namespace.
	if m := regexp.MustCompile(`(?i)\b(src|href)\s*=|https?://(?:[^w]|w[^w])`).FindString(body); m != "" {
		t.Errorf("the page refers to something else: %q", m)
	}
	csp := w.Header().Get("Content-Security-Policy")
	for _, tag := range []string{"script", "style"} {
		_, rest, _ := strings.Cut(body, "<"+tag+">")
		content, _, _ := strings.Cut(rest, "</"+tag+">")
		sum := sha256.Sum256([]byte(content))
		if want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, tag+"-src "+want) {
			t.Errorf("CSP %q does not allow the page's %s by its hash %s", csp, tag, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q allows unsafe sources", csp)
	}
	again := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/status", nil)
	r.Header.Set("If-None-Match", w.Header().Get("ETag"))
	s.ServePage(again, r)
	if again.Code != http.StatusNotModified {
		t.Fatalf("revalidation: %d", again.Code)
	}
}
