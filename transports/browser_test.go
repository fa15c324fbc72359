package transports_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
	"github.com/edgeworks/edge/transports/internal/browsertest"
)

// dashboardPage is a dashboard that uses nothing but EventSource.
const dashboardPage = `<!doctype html><script>
window.got = []; window.opens = 0;
const es = new EventSource(%q);
es.onopen = () => { window.opens++; };
es.onmessage = (e) => { window.got.push(e.data); };
</script>`

// A page that uses only new EventSource(...) gets every message, and
// resumes by itself (Last-Event-ID) across a restart of the edge whose
// store kept the history, as a Redis-backed node's does.
func TestBrowserEventSourceResumesAcrossRestart(t *testing.T) {
	browser := browsertest.Start(t)
	cfg := transports.Config{CORSOrigin: "*", SSERetry: 100 * time.Millisecond, DrainTimeout: 2 * time.Second}.WithDefaults()
	store := resume.NewMemory(resume.MemoryConfig{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	base := "http://" + addr
	serve := func(ln net.Listener) (stop func()) {
		srv, err := transports.New(cfg, store, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx, ln) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("edge Run: %v", err)
			}
		}
	}
	stop := serve(ln)
	defer func() { stop() }()

	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, dashboardPage, base+"/v1/subscribe?channel=dash")
	}))
	defer page.Close()
	if err := chromedp.Do(browser, chromedp.Navigate(page.URL)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, browser, `window.opens >= 1`)

	publish := func(data string) {
		t.Helper()
		if _, err := store.Publish(context.Background(), "dash", "", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for i := range 5 {
		want = append(want, fmt.Sprintf("before-%d", i))
		publish(want[len(want)-1])
	}
	waitJS(t, browser, `window.got.length >= 5`)

	stop() // the edge drains: the page is told to reconnect
	for i := range 3 {
		want = append(want, fmt.Sprintf("while-down-%d", i))
		publish(want[len(want)-1]) // reaches the store, as through another node
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	stop = serve(ln)
	waitJS(t, browser, `window.opens >= 2`)
	want = append(want, "after")
	publish("after")
	waitJS(t, browser, fmt.Sprintf(`window.got.length >= %d`, len(want)))

	got, err := chromedp.Run(browser, chromedp.Evaluate[[]string](`window.got`))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the page got %q, want %q", got, want)
	}
}

// waitJS waits until the page's expression is true.
func waitJS(t *testing.T, browser context.Context, expr string) {
	t.Helper()
	if _, err := chromedp.Run(browser, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		state, _ := chromedp.Run(browser, chromedp.Evaluate[string](`JSON.stringify({opens: window.opens, got: window.got})`))
		t.Fatalf("waiting for %s: %v (page: %s)", expr, err, state)
	}
}
