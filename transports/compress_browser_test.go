package transports_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/edgeworks/edge/transports"
	"github.com/edgeworks/edge/transports/internal/browsertest"
)

// A page's plain EventSource on compress=1 gets a gzip-encoded stream
// (Chromium sends Accept-Encoding: gzip) and every message, each as it
// is published.
func TestBrowserEventSourceCompressed(t *testing.T) {
	browser := browsertest.Start(t)
	e := startEdge(t, transports.Config{CORSOrigin: "*"})
	stream := e.url("/v1/subscribe", "channel", "zdash", "compress", "1")
	var mu sync.Mutex
	var encoding []string // Content-Encoding of each answer to the stream's URL
	if _, err := chromedp.Call(browser, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	err := chromedp.Listen(browser, func(ev any) {
		if r, ok := ev.(*network.EventResponseReceived); ok && r.Response.URL == stream {
			mu.Lock()
			defer mu.Unlock()
			for k, v := range r.Response.Headers {
				if strings.EqualFold(k, "Content-Encoding") {
					encoding = append(encoding, fmt.Sprint(v))
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, dashboardPage, stream)
	}))
	defer page.Close()
	if err := chromedp.Do(browser, chromedp.Navigate(page.URL)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, browser, `window.opens >= 1`)
	var want []string
	for i := range 5 {
		want = append(want, fmt.Sprintf(`{"widget":%d,"value":"%s"}`, i, strings.Repeat("v", 100*i)))
		e.publish("zdash", want[i])
		waitJS(t, browser, fmt.Sprintf(`window.got.length >= %d`, i+1))
	}
	got, err := chromedp.Run(browser, chromedp.Evaluate[[]string](`window.got`))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the page got %q, want %q", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(encoding) == 0 || encoding[0] != "gzip" {
		t.Fatalf("the stream's Content-Encoding %q, want gzip", encoding)
	}
}
