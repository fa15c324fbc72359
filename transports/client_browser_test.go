package transports_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
	"github.com/edgeworks/edge/transports/internal/browsertest"
	"github.com/edgeworks/edge/transports/internal/proxytest"
)

// fastClient are client options for tests: quick to give up on a broken
// path and to reconnect.
const fastClient = `{"openTimeout": 1500, "minDelay": 20, "maxDelay": 300, "hiddenDelay": 0}`

// clientPageHTML subscribes with the edge client (module import) and
// records everything it reports on window.
const clientPageHTML = `<!doctype html><title>client</title><script type="module">
import { subscribe } from %q;
window.got = []; window.gaps = []; window.presence = []; window.states = []; window.errors = []; window.reasons = []; window.delays = []; window.urls = [];
const realFetch = window.fetch;
window.fetch = (u, o) => { window.urls.push(String(u)); return realFetch(u, o); };
window.sub = subscribe(%q, %s, Object.assign({
  onMessage: (m) => window.got.push(m.channel + "/" + m.data),
  onGap: (c) => window.gaps.push(c),
  onPresence: (p) => window.presence.push(p.event + ":" + p.channel + ":" + p.member.info),
  onStateChange: (s, info) => {
    window.states.push(s + ":" + info.transport);
    if (info.delay !== undefined) window.delays.push(info.delay);
    if (info.error) window.reasons.push(info.error.message);
  },
  onError: (e) => window.errors.push(e.code + ": " + e.message),
}, %s));
</script>`

// clientPage returns the test page for channels of the edge at base.
func clientPage(base string, channels []string, options string) http.HandlerFunc {
	list, _ := json.Marshal(channels)
	html := fmt.Sprintf(clientPageHTML, base+"/v1/client.js", base, list, options)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, html)
	}
}

// tab is a browser tab with the client page loaded.
type tab struct {
	t       *testing.T
	browser context.Context
}

func openTab(t *testing.T, pageURL string) *tab {
	t.Helper()
	browser := browsertest.Start(t)
	if err := chromedp.Do(browser, chromedp.Navigate(pageURL)); err != nil {
		t.Fatal(err)
	}
	return &tab{t, browser}
}

// wait waits until the page's expression is true.
func (b *tab) wait(expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.browser, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		b.t.Fatalf("waiting for %s: %v\npage: %s", expr, err, b.report())
	}
}

func (b *tab) report() string {
	s, _ := chromedp.Run(b.browser, chromedp.Evaluate[string](`JSON.stringify({state: window.sub && window.sub.state, transport: window.sub && window.sub.transport, states: window.states, reasons: window.reasons, errors: window.errors, got: (window.got || []).length, gaps: window.gaps})`))
	return s
}

func (b *tab) eval(expr string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.browser, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return s
}

// waitOpen waits until the client is open and returns its transport.
func (b *tab) waitOpen() string {
	b.t.Helper()
	b.wait(`window.sub && window.sub.state === "open"`)
	return b.eval(`window.sub.transport`)
}

// received waits for len(want) messages and fails unless each channel's
// messages are exactly want's for that channel, in order. (Order holds
// within a channel; across channels history is read channel by channel.)
func (b *tab) received(want []string) {
	b.t.Helper()
	b.wait(fmt.Sprintf(`window.got.length >= %d`, len(want)))
	got, err := chromedp.Run(b.browser, chromedp.Evaluate[[]string](`window.got`))
	if err != nil {
		b.t.Fatal(err)
	}
	if fmt.Sprint(byChannel(got)) != fmt.Sprint(byChannel(want)) {
		b.t.Fatalf("the page got %d messages %q,\nwant %d %q\npage: %s", len(got), got, len(want), want, b.report())
	}
}

// byChannel splits "channel/data" entries by channel, keeping their order.
func byChannel(list []string) map[string][]string {
	out := map[string][]string{}
	for _, s := range list {
		ch, _, _ := strings.Cut(s, "/")
		out[ch] = append(out[ch], s)
	}
	return out
}

// publishN publishes n messages named prefix-i alternately to channels
// and returns what a subscriber to all of them receives.
func publishN(e *testEdge, channels []string, prefix string, n int) []string {
	var want []string
	for i := range n {
		ch := channels[i%len(channels)]
		data := fmt.Sprintf("%s-%d", prefix, i)
		e.publish(ch, data)
		want = append(want, ch+"/"+data)
	}
	return want
}

// Directly, from a page of another origin, the client starts on
// long-polling, moves to WebSocket and receives every message of two
// channels.
func TestClientPicksWebSocket(t *testing.T) {
	e := startEdge(t, transports.Config{CORSOrigin: "*"})
	channels := []string{"prices", "news"}
	page := httptest.NewServer(clientPage(e.base, channels, fastClient))
	defer page.Close()
	b := openTab(t, page.URL)
	b.waitTransport("ws")
	b.received(publishN(e, channels, "m", 40))
	if first := b.eval(`window.states[0]`); first != "connecting:poll" {
		t.Errorf("first state %q, want connecting:poll", first)
	}
}

// The classic-script form defines globalThis.edge.
func TestClientAsClassicScript(t *testing.T) {
	e := startEdge(t, transports.Config{CORSOrigin: "*"})
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><script src="%s/v1/client.js?classic"></script><script>
window.got = [];
window.sub = edge.subscribe(%q, ["c"], {transports: ["sse"], onMessage: (m) => window.got.push(m.channel + "/" + m.data)});
</script>`, e.base, e.base)
	}))
	defer page.Close()
	b := openTab(t, page.URL)
	if got := b.waitOpen(); got != "sse" {
		t.Fatalf("transport %q, want sse", got)
	}
	b.received(publishN(e, []string{"c"}, "m", 10))
}

// Killing the WebSocket path while messages flow moves the client to SSE
// with its cursor: nothing lost, nothing twice. When WebSocket gets
// through again, the client moves back to it, again without loss.
func TestClientSwitchesTransportMidStream(t *testing.T) {
	e := startEdge(t, transports.Config{CORSOrigin: "*"})
	proxy := proxytest.Start(t, e.base, proxytest.Pass)
	channels := []string{"x", "y"}
	proxy.Handle("/test.html", clientPage(proxy.URL(), channels, `{"openTimeout": 1500, "minDelay": 20, "maxDelay": 300, "upgradeAfter": 300}`))
	b := openTab(t, proxy.URL()+"/test.html")
	b.waitTransport("ws")
	want := publishN(e, channels, "before", 100)
	b.wait(`window.got.length >= 20`)
	proxy.SetMode(proxytest.RefuseUpgrades)
	if n := proxy.KillUpgraded(); n != 1 {
		t.Fatalf("killed %d WebSocket connections, want 1", n)
	}
	want = append(want, publishN(e, channels, "during", 100)...)
	b.received(want)
	b.wait(`window.sub.transport === "sse" && window.sub.state === "open"`)
	want = append(want, publishN(e, channels, "on-sse", 50)...)
	b.received(want)

	upgrades := proxy.Upgrades()
	proxy.SetMode(proxytest.Pass)
	want = append(want, publishN(e, channels, "probing", 50)...)
	b.wait(`window.sub.transport === "ws" && window.sub.state === "open"`)
	if proxy.Upgrades() <= upgrades {
		t.Fatal("the client is on ws without a new upgrade through the proxy")
	}
	want = append(want, publishN(e, channels, "back-on-ws", 50)...)
	b.received(want)
}

// A WebSocket path that dies silently (the proxy drops everything and
// closes nothing) is noticed by the client's ping: it reconnects and
// resumes from its cursor, nothing lost, nothing twice.
func TestClientNoticesSilentlyDeadWebSocket(t *testing.T) {
	// The edge lets clients ask for 1 s heartbeats (it refuses heartbeat=
	// under HeartbeatMin).
	e := startEdge(t, transports.Config{CORSOrigin: "*", HeartbeatMin: time.Second})
	proxy := proxytest.Start(t, e.base, proxytest.Pass)
	proxy.Handle("/test.html", clientPage(proxy.URL(), []string{"s"}, `{"openTimeout": 1500, "minDelay": 20, "maxDelay": 300, "heartbeat": 1000}`))
	b := openTab(t, proxy.URL()+"/test.html")
	b.waitTransport("ws")
	want := publishN(e, []string{"s"}, "before", 5)
	b.received(want)
	// Idle past a heartbeat, the client pings and the path stays up.
	b.eval(`String(window.idleSince = performance.now())`)
	b.wait(`performance.now() - window.idleSince > 2500`)
	if b.eval(`window.sub.state`) != "open" || proxy.Upgrades() != 1 {
		t.Fatalf("an idle connection did not stay up: %s, %d upgrades", b.report(), proxy.Upgrades())
	}
	if n := proxy.StallUpgraded(); n != 1 {
		t.Fatalf("stalled %d WebSocket connections, want 1", n)
	}
	want = append(want, publishN(e, []string{"s"}, "lost-in-transit", 5)...)
	b.wait(`window.reasons.includes("ws: no answer to a ping")`)
	b.received(want)
	if got := b.eval(`window.sub.transport`); got != "ws" || proxy.Upgrades() != 2 {
		t.Errorf("after the dead path: transport %s, %d upgrades; want ws over a second upgrade", got, proxy.Upgrades())
	}
	want = append(want, publishN(e, []string{"s"}, "after", 5)...)
	b.received(want)
}

// An edge older than the ping op answers it with an error frame; that
// proves the path as well, and the client stays on its connection.
func TestClientPingAgainstAnEdgeWithoutPing(t *testing.T) {
	e := startEdge(t, transports.Config{})
	var conns, refused atomic.Int64
	old := http.NewServeMux()
	old.Handle("/", e.srv.Handler()) // client.js
	old.HandleFunc("/v1/subscribe", func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		conns.Add(1)
		c.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribed","channel":"s","id":"1-0"}`))
		for {
			var op struct {
				Op  string          `json:"op"`
				Ref json.RawMessage `json:"ref"`
			}
			if c.ReadJSON(&op) != nil {
				return
			}
			refused.Add(1)
			c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"error","ref":%s,"error":{"code":"bad_request","message":"unknown op"}}`, op.Ref))
		}
	})
	srv := httptest.NewServer(old)
	defer srv.Close()
	old.Handle("/test.html", clientPage(srv.URL, []string{"s"}, `{"transports": ["ws"], "heartbeat": 1000}`))
	b := openTab(t, srv.URL+"/test.html")
	b.waitOpen()
	b.eval(`String(window.idleSince = performance.now())`)
	b.wait(`performance.now() - window.idleSince > 3500`)
	if refused.Load() < 2 || conns.Load() != 1 || b.eval(`window.sub.state`) != "open" {
		t.Fatalf("%d pings refused on %d connections; want at least 2 on one that stays open: %s", refused.Load(), conns.Load(), b.report())
	}
}

// With the presence option, the client hears another subscriber's join
// and leave through onPresence, on every transport, and its info= is
// what the others see of it: it is one member, a long-poll too.
func TestClientHearsPresence(t *testing.T) {
	for _, tr := range []string{"ws", "sse", "poll"} {
		t.Run(tr, func(t *testing.T) {
			e := startEdgeWith(t, transports.Config{CORSOrigin: "*", Presence: []string{"room.*"}}, resume.NewMemory(resume.MemoryConfig{}))
			opts := fmt.Sprintf(`{"transports": [%q], "presence": true, "info": "page", "openTimeout": 1500}`, tr)
			page := httptest.NewServer(clientPage(e.base, []string{"room.1"}, opts))
			defer page.Close()
			b := openTab(t, page.URL)
			b.waitOpen()
			if tr == "poll" {
				// Joins are heard while a poll is held.
				waitValue(t, e, 1, "edge_connections", "transport", "poll")
			}
			listed := waitMembers(t, e, "room.1", 1).Members[0]
			if listed.Info != "page" {
				t.Fatalf("the page is listed as %+v, want info page", listed)
			}
			other := openSSE(t, e.url("/v1/subscribe", "channel", "room.1", "info", "other"), nil)
			other.lastID()
			b.wait(`window.presence.includes("join:room.1:other")`)
			if tr == "poll" {
				waitValue(t, e, 1, "edge_connections", "transport", "poll")
			}
			other.close()
			b.wait(`window.presence.includes("leave:room.1:other")`)
			// Joins and leaves move no cursor: the next message comes.
			e.publish("room.1", "after")
			b.received([]string{"room.1/after"})
			// One member all along, a long-poll too (its member token).
			if a := waitMembers(t, e, "room.1", 1); a.Members[0] != listed {
				t.Fatalf("the page is listed as %+v, was %+v", a.Members[0], listed)
			}
		})
	}
}

// A cursor whose history was trimmed is reported with onGap, then the
// client goes on with what is retained.
func TestClientReportsGap(t *testing.T) {
	e := startEdgeWith(t, transports.Config{CORSOrigin: "*"}, resume.NewMemory(resume.MemoryConfig{HistorySize: 3}))
	old := e.publish("g", "old")
	want := publishN(e, []string{"g"}, "kept", 6)[3:]
	page := httptest.NewServer(clientPage(e.base, []string{"g"}, fmt.Sprintf(`{"since": %q}`, old)))
	defer page.Close()
	b := openTab(t, page.URL)
	b.received(want)
	if gaps := b.eval(`window.gaps.join(",")`); gaps != "g" {
		t.Fatalf("gaps %q, want g", gaps)
	}
}

// While the page is hidden the client closes its connection; when it is
// visible again it resumes from its cursor. Offline and online do the
// same.
func TestClientPausesWhileHiddenAndOffline(t *testing.T) {
	e := startEdge(t, transports.Config{CORSOrigin: "*"})
	page := httptest.NewServer(clientPage(e.base, []string{"p"}, fastClient))
	defer page.Close()
	b := openTab(t, page.URL)
	b.waitOpen()
	want := publishN(e, []string{"p"}, "visible", 5)
	b.received(want)

	b.eval(`(() => {
	  window.visibility = "hidden";
	  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => window.visibility});
	  document.dispatchEvent(new Event("visibilitychange"));
	  return "";
	})()`)
	b.wait(`window.sub.state === "paused"`)
	waitNoSessions(t, e)
	want = append(want, publishN(e, []string{"p"}, "hidden", 5)...)
	b.eval(`(() => { window.visibility = "visible"; document.dispatchEvent(new Event("visibilitychange")); return ""; })()`)
	b.received(want)

	if _, err := chromedp.Call(b.browser, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: true, DownloadThroughput: -1, UploadThroughput: -1}); err != nil {
		t.Fatal(err)
	}
	b.wait(`window.sub.state === "offline"`)
	want = append(want, publishN(e, []string{"p"}, "offline", 5)...)
	if _, err := chromedp.Call(b.browser, network.OverrideNetworkState, network.OverrideNetworkStateParams{DownloadThroughput: -1, UploadThroughput: -1}); err != nil {
		t.Fatal(err)
	}
	b.received(want)
}

// The edge's drain tells the client when to come back (a jittered
// retry_ms); the client waits that long, reconnects to the restarted edge
// with its cursor, and misses nothing published while it was away.
func TestClientHonoursDrainAndResumes(t *testing.T) {
	cfg := transports.Config{SSERetry: 300 * time.Millisecond, DrainTimeout: 2 * time.Second, CORSOrigin: "*"}.WithDefaults()
	store := resume.NewMemory(resume.MemoryConfig{})
	e := startEdgeWith(t, cfg, store)
	page := httptest.NewServer(clientPage(e.base, []string{"d"}, fastClient))
	defer page.Close()
	b := openTab(t, page.URL)
	b.waitOpen()
	want := publishN(e, []string{"d"}, "before", 5)
	b.received(want)

	addr := strings.TrimPrefix(e.base, "http://")
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	publish := func(prefix string) {
		for i := range 3 { // straight into the store: as through another node
			data := fmt.Sprintf("%s-%d", prefix, i)
			if _, err := store.Publish(context.Background(), "d", "", []byte(data)); err != nil {
				t.Fatal(err)
			}
			want = append(want, "d/"+data)
		}
	}
	publish("while-down")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	serveOn(t, cfg, store, ln)
	publish("after")
	b.received(want)
	delay, err := chromedp.Run(b.browser, chromedp.Evaluate[float64](`window.delays[0]`))
	if err != nil {
		t.Fatal(err)
	}
	if delay < 300 || delay > 300+5000 {
		t.Fatalf("the client waited %v ms after the drain, want the edge's retry_ms (300 ms plus up to 5 s of jitter)", delay)
	}
}

// The app can ask for rare heartbeats and for long-polls that linger, to
// wake the device less.
func TestClientBatteryOptions(t *testing.T) {
	e := startEdge(t, transports.Config{CORSOrigin: "*"})
	for _, tc := range []struct{ transport, options, want string }{
		{"sse", `"heartbeat": 120000`, "heartbeat=120s"},
		{"poll", `"linger": 2000, "pollTimeout": 50000`, "linger=2s"},
	} {
		page := httptest.NewServer(clientPage(e.base, []string{"b"}, fmt.Sprintf(`{"transports": [%q], %s}`, tc.transport, tc.options)))
		b := openTab(t, page.URL)
		b.waitOpen()
		b.received(publishN(e, []string{"b"}, tc.transport, 3))
		if urls := b.eval(`window.urls.join(" ")`); !strings.Contains(urls, tc.want) {
			t.Errorf("%s: the client asked for %s, want %s", tc.transport, urls, tc.want)
		}
		page.Close()
	}
}

// Full jitter: reconnect delays spread over [0, min(max, min*2^attempt)),
// so clients of a restarted node do not come back together.
func TestClientBackoffIsFullJitter(t *testing.T) {
	e := startEdge(t, transports.Config{CORSOrigin: "*"})
	page := httptest.NewServer(clientPage(e.base, []string{"j"}, fastClient))
	defer page.Close()
	b := openTab(t, page.URL)
	b.waitOpen()
	script := fmt.Sprintf(`(async () => {
	  const { backoff } = await import(%q);
	  const out = [];
	  for (const attempt of [0, 3, 10]) {
	    const ds = Array.from({length: 2000}, () => backoff(attempt, 1000, 30000));
	    const cap = Math.min(30000, 1000 * 2 ** attempt);
	    const mean = ds.reduce((a, b) => a + b, 0) / ds.length;
	    const low = ds.filter((d) => d < cap / 4).length;
	    out.push(ds.every((d) => d >= 0 && d < cap) && mean > cap * 0.4 && mean < cap * 0.6 && low > 300 ? "ok" : "bad " + cap + " " + mean + " " + low);
	  }
	  return out.join(",");
	})()`, e.base+"/v1/client.js")
	got, err := chromedp.Run(b.browser, chromedp.Evaluate[string](script, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if got != "ok,ok,ok" {
		t.Fatalf("backoff: %s", got)
	}
}

// The client sends its token on every transport; when the edge ends a
// stream because the token expired, the client reconnects with the token
// its function returns then, from its cursor, missing nothing.
func TestClientWithExpiringToken(t *testing.T) {
	e := startEdge(t, transports.Config{CORSOrigin: "*", JWTSecret: testSecret})
	short := token(t, "9", []string{"private:9"}, nil, 2*time.Second)
	long := token(t, "9", []string{"private:9"}, nil, time.Hour)
	for _, transport := range []string{"ws", "sse", "poll"} {
		t.Run(transport, func(t *testing.T) {
			// The first connection gets the short-lived token, later ones the long one.
			options := fmt.Sprintf(`{"transports": [%q], "minDelay": 20, "maxDelay": 200,
			  "token": ((tokens) => () => tokens.length > 1 ? tokens.shift() : tokens[0])([%q, %q])}`, transport, short, long)
			page := httptest.NewServer(clientPage(e.base, []string{"private:9"}, options))
			defer page.Close()
			b := openTab(t, page.URL)
			b.waitOpen()
			want := publishN(e, []string{"private:9"}, "first", 5)
			b.received(want)
			if transport != "poll" { // a stream outlives its token; a poll asks again each time
				b.wait(`window.states.filter((s) => s.startsWith("open")).length >= 2`)
			}
			want = append(want, publishN(e, []string{"private:9"}, "after-expiry", 5)...)
			b.received(want)
			if errs := b.eval(`window.errors.join(";")`); errs != "" {
				t.Fatalf("errors: %s", errs)
			}
		})
	}
}

// The demo page at / subscribes, shows messages with the transport in
// use, and publishes from its form; a screenshot shows them.
func TestDemoPageRendersMessages(t *testing.T) {
	e := startEdge(t, transports.Config{})
	b := openTab(t, e.base+"/")
	// The demo starts on long-polling and shows the move to WebSocket.
	b.wait(`document.getElementById("status").textContent === "open" && document.getElementById("via").textContent === "via ws"`)
	if why := b.eval(`document.getElementById("via").title`); !strings.HasPrefix(why, "poll ok in ") || !strings.Contains(why, ", ws ok in ") {
		t.Errorf("the demo explains the transport as %q, want poll ok, then ws ok", why)
	}
	for i := range 3 {
		e.publish("demo", fmt.Sprintf(`{"n":%d}`, i))
	}
	if err := chromedp.Do(b.browser,
		chromedp.SetValue(chromedp.ID("payload"), "from the form"),
		chromedp.Click(chromedp.CSS(`#publish button`)),
	); err != nil {
		t.Fatal(err)
	}
	b.wait(`document.querySelectorAll("#messages li.message").length === 4`)
	if first := b.eval(`document.querySelector("#messages li.message .data").textContent`); first != "from the form" {
		t.Fatalf("newest message shows %q", first)
	}
	if result := b.eval(`document.getElementById("result").textContent`); !strings.HasPrefix(result, "Stored as ") {
		t.Fatalf("publish result %q", result)
	}

	if err := chromedp.Do(b.browser, chromedp.EmulateViewport(1000, 800)); err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(b.browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	colors := map[uint32]bool{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y += 4 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 4 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	if len(colors) < 20 {
		t.Fatalf("the screenshot has %d colors: nothing rendered", len(colors))
	}
	dir := os.Getenv("EDGE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "demo.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
