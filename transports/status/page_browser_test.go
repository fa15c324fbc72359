package status

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgeworks/edge/transports/internal/browsertest"
	"github.com/edgeworks/edge/transports/metrics"
)

// Behind a path prefix, the page finds its stream, shows a store that
// does not answer in red with the reason, and says "reconnecting…" when
// the stream ends.
func TestPageInBrowser(t *testing.T) {
	const storeErr = "backend unavailable: redis ping: dial tcp 127.0.0.1:6379: connect: connection refused"
	read := func(context.Context) Reading {
		r := Reading{Sessions: 3, Store: "redis", StoreErr: storeErr}
		r.Connections[metrics.WS], r.Connections[metrics.SSE], r.Connections[metrics.Poll] = 2, 1, 0
		return r
	}
	s := New(read, nil, WithInterval(20*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { s.Run(ctx); close(ran) }()
	defer func() { cancel(); <-ran }()
	mux := http.NewServeMux()
	mux.HandleFunc("/edge/status", s.ServePage)
	mux.HandleFunc("/edge/status/events", s.ServeEvents)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	b := browsertest.Start(t)
	if err := chromedp.Do(b, chromedp.EmulateViewport(1000, 700), chromedp.Navigate(srv.URL+"/edge/status")); err != nil {
		t.Fatal(err)
	}
	wait := func(expr string) {
		t.Helper()
		if _, err := chromedp.Run(b, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("waiting for %s: %v", expr, err)
		}
	}
	text := func(id string) string {
		t.Helper()
		s, err := chromedp.Run(b, chromedp.Evaluate[string](`document.getElementById("`+id+`").textContent`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	wait(`Number(document.body.dataset.points) >= 5 && document.getElementById("live-text").textContent === "live"`)
	if got := text("conn-ws") + "/" + text("conn-sse") + "/" + text("conn-poll") + "/" + text("sessions"); got != "2/1/0/3" {
		t.Errorf("ws/sse/poll/sessions show %s, want 2/1/0/3", got)
	}
	if got := text("lat-p99"); got != "–" {
		t.Errorf("latency without samples shows %q", got)
	}
	if got := text("store-text"); got != "redis · not ready" {
		t.Errorf("the store shows %q", got)
	}
	if got := text("store-error"); got != "The redis store does not answer: "+storeErr {
		t.Errorf("the banner says %q", got)
	}
	cancel()
	<-ran
	wait(`document.getElementById("live-text").textContent === "reconnecting…"`)
}
