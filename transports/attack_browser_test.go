package transports_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgeworks/edge/transports"
	"github.com/edgeworks/edge/transports/internal/browsertest"
)

// crossSitePage is another site's page that makes its visitor's browser
// publish to the edge at %[1]q with the two requests a browser sends
// without a CORS preflight: a form's (urlencoded) and a text/plain one.
// window.done is set once both were answered.
const crossSitePage = `<!doctype html><script>
const url = %[1]q + "/v1/publish?channel=victim";
Promise.allSettled([
	fetch(url, {method: "POST", mode: "no-cors", body: new URLSearchParams("a=form")}),
	fetch(url, {method: "POST", mode: "no-cors", body: "fetch"}),
]).then(() => { window.done = true; });
</script>`

// A page of another site open in a browser on the edge's host cannot
// publish through the browser (anonymous loopback publishing), in real
// Chromium; once --cors-origin names the site, the same page does (so the
// attack reaches the edge and its refusal is what stops it).
func TestBrowserCrossSitePublish(t *testing.T) {
	browser := browsertest.Start(t)
	for _, tc := range []struct {
		name    string
		allowed bool // --cors-origin names the page's origin
		stored  int
	}{
		{"another site", false, 0},
		{"a site --cors-origin allows", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var edgeURL atomic.Pointer[string]
			page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				fmt.Fprintf(w, crossSitePage, *edgeURL.Load())
			}))
			defer page.Close()
			cfg := transports.Config{}
			if tc.allowed {
				cfg.CORSOrigin = page.URL
			}
			e := startEdge(t, cfg)
			edgeURL.Store(&e.base)
			if err := chromedp.Do(browser, chromedp.Navigate(page.URL)); err != nil {
				t.Fatal(err)
			}
			if _, err := chromedp.Run(browser, chromedp.Poll[bool](`window.done`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
				t.Fatalf("the page's requests were not answered: %v", err)
			}
			var got struct{ Messages []wireMessage }
			getJSON(t, e.url("/v1/history", "channel", "victim"), nil, &got)
			if len(got.Messages) != tc.stored {
				t.Fatalf("%d messages stored (%+v), want %d", len(got.Messages), got.Messages, tc.stored)
			}
		})
	}
}

// rebindScript publishes from a page the browser loaded from the edge
// itself under the name it was given, as a page does once DNS rebinding
// pointed its name at 127.0.0.1: same-origin, so its Origin matches its
// Host. It resolves to what the HTTP publish and a WebSocket publish op
// were answered.
const rebindScript = `(async () => {
	const http = await fetch("/v1/publish?channel=victim", {method: "POST", body: "http"}).then(r => r.status);
	const ws = await new Promise((resolve) => {
		const s = new WebSocket(location.origin.replace("http", "ws") + "/v1/subscribe");
		s.onopen = () => s.send(JSON.stringify({op: "publish", channel: "victim", data: "ws", ref: 1}));
		s.onmessage = (e) => { const f = JSON.parse(e.data); resolve(f.type === "error" ? f.error.code : f.type); s.close(); };
		s.onerror = () => resolve("refused");
	});
	return http + " " + ws;
})()`

// A DNS-rebinding page, which reaches the edge on loopback under its own
// name, cannot publish anonymously over HTTP or a WebSocket, in real
// Chromium (its resolver maps the name to 127.0.0.1); the same page under
// a loopback name, or a name --domain gives the edge, can.
func TestBrowserDNSRebinding(t *testing.T) {
	browser := browsertest.Start(t, chromedp.Flag("host-resolver-rules", "MAP rebind.test 127.0.0.1, MAP edge.test 127.0.0.1"))
	e := startEdge(t, transports.Config{Domains: []string{"edge.test"}})
	port := e.base[strings.LastIndex(e.base, ":")+1:]
	for _, tc := range []struct {
		host string
		want string
	}{
		{"rebind.test", "403 forbidden"},
		{"127.0.0.1", "200 published"},
		{"localhost", "200 published"},
		{"edge.test", "200 published"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			if err := chromedp.Do(browser, chromedp.Navigate("http://"+tc.host+":"+port+"/healthz")); err != nil {
				t.Fatal(err)
			}
			got, err := chromedp.Run(browser, chromedp.Evaluate[string](rebindScript, chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("publishes from a page at %s: %q, want %q", tc.host, got, tc.want)
			}
		})
	}
}
