package transports_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/edgeworks/edge/transports"
	"github.com/edgeworks/edge/transports/internal/browsertest"
	"github.com/edgeworks/edge/transports/internal/proxytest"
)

// measuring reports whether this run measures (EDGE_MEASURE set): the
// tests then repeat, wait longer and log what they measured, asserting
// only what they assert in every run.
func measuring() bool { return os.Getenv("EDGE_MEASURE") != "" }

// lifecyclePageHTML subscribes with the edge client and records, with
// timestamps, the messages, the states and the network events the page
// sees; window.hide() and window.show() fake the page's visibility
// (?visibility=hidden opens it hidden, as in a background tab).
const lifecyclePageHTML = `<!doctype html><title>lifecycle</title><script type="module">
import { subscribe } from %q;
window.got = []; window.gotAt = []; window.states = []; window.reasons = []; window.errors = [];
window.netAt = {online: [], offline: [], resume: []};
addEventListener("online", (e) => window.netAt.online.push(e.timeStamp));
addEventListener("offline", (e) => window.netAt.offline.push(e.timeStamp));
document.addEventListener("resume", (e) => window.netAt.resume.push(e.timeStamp));
window.visibility = new URLSearchParams(location.search).get("visibility") || "visible";
Object.defineProperty(document, "visibilityState", {configurable: true, get: () => window.visibility});
window.hide = () => { window.visibility = "hidden"; document.dispatchEvent(new Event("visibilitychange")); return ""; };
window.show = () => { window.visibility = "visible"; document.dispatchEvent(new Event("visibilitychange")); return ""; };
window.sub = subscribe(%q, %s, Object.assign({
  onMessage: (m) => { window.got.push(m.channel + "/" + m.data); window.gotAt.push(performance.now()); },
  onStateChange: (s, info) => { window.states.push(s + ":" + info.transport); if (info.error) window.reasons.push(info.error.message); },
  onError: (e) => window.errors.push(e.code + ": " + e.message),
}, %s));
</script>`

// lifecyclePage returns the page for channels of the edge at base.
func lifecyclePage(base string, channels []string, options string) http.HandlerFunc {
	list, _ := json.Marshal(channels)
	html := fmt.Sprintf(lifecyclePageHTML, base+"/v1/client.js", base, list, options)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, html)
	}
}

// network conditions of the tests: Chromium's emulation (requests fail,
// or are throttled as on a 3G link) and the navigator's state (onLine
// and the online and offline events), which the emulation leaves alone.
var (
	offline = []*network.Conditions{{Offline: true, DownloadThroughput: -1, UploadThroughput: -1}}
	// fast3G is DevTools' "Fast 3G" preset: 562.5 ms of latency, about
	// 1.44 Mbit/s down and 675 kbit/s up.
	fast3G    = []*network.Conditions{{Latency: 562.5, DownloadThroughput: 180000, UploadThroughput: 84375, ConnectionType: network.ConnectionTypeCellular3g}}
	unlimited = []*network.Conditions{}
)

// setNetwork applies conditions to the tab and sets navigator.onLine.
func (b *tab) setNetwork(conditions []*network.Conditions, online bool) {
	b.t.Helper()
	if _, err := chromedp.Call(b.browser, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: conditions}); err != nil {
		b.t.Fatal(err)
	}
	state := network.OverrideNetworkStateParams{Offline: !online, DownloadThroughput: -1, UploadThroughput: -1}
	if _, err := chromedp.Call(b.browser, network.OverrideNetworkState, state); err != nil {
		b.t.Fatal(err)
	}
}

// waitTimed is wait polling on a timer rather than on animation frames,
// which a page resumed from a frozen state may not get in headless
// Chromium.
func (b *tab) waitTimed(expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.browser, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		b.t.Fatalf("waiting for %s: %v\npage: %s", expr, err, b.report())
	}
}

// receivedInOrder waits for len(want) messages and fails unless the page
// got exactly want, in order.
func (b *tab) receivedInOrder(want []string) {
	b.t.Helper()
	b.waitTimed(fmt.Sprintf(`window.got.length >= %d`, len(want)))
	got, err := chromedp.Run(b.browser, chromedp.Evaluate[[]string](`window.got`))
	if err != nil {
		b.t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		b.t.Fatalf("the page got %d messages %q,\nwant %d %q\npage: %s", len(got), got, len(want), want, b.report())
	}
}

// evalUntil evaluates the page's expression until it is true, for 20 s
// at most. Unlike wait it works on a frozen page, which runs no timers.
func (b *tab) evalUntil(expr string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for b.eval(fmt.Sprintf(`String(!!(%s))`, expr)) != "true" {
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for %s: %s", expr, b.report())
		}
		<-tick.C
	}
}

// firstMessageAfter returns the milliseconds from the page time startExpr
// evaluates to (such as the last online event's) to the first message
// received at or after it.
func (b *tab) firstMessageAfter(startExpr string) float64 {
	b.t.Helper()
	b.waitTimed(fmt.Sprintf(`window.gotAt.some((t) => t >= %s)`, startExpr))
	ms, err := chromedp.Run(b.browser, chromedp.Evaluate[float64](fmt.Sprintf(`(() => { const s = %s; return window.gotAt.find((t) => t >= s) - s; })()`, startExpr)))
	if err != nil {
		b.t.Fatal(err)
	}
	return ms
}

// wireLog records when the tab's subscribe traffic happened, from
// Chromium's network events: requests sent, WebSocket connections
// opened, WebSocket data frames either way and chunks of response bodies
// (SSE comments and events, long-poll answers). WebSocket ping and pong
// control frames are handled below the page and not reported.
type wireLog struct {
	mu     sync.Mutex
	ids    map[network.RequestID]bool // requests to /v1/subscribe
	events []time.Time
}

func listenWire(t *testing.T, ctx context.Context) *wireLog {
	t.Helper()
	w := &wireLog{ids: map[network.RequestID]bool{}}
	err := chromedp.Listen(ctx, func(ev any) {
		w.mu.Lock()
		defer w.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if strings.Contains(ev.Request.URL, "/v1/subscribe") {
				w.ids[ev.RequestID] = true
				w.events = append(w.events, time.Now())
			}
		case *network.EventWebSocketCreated:
			if strings.Contains(ev.URL, "/v1/subscribe") {
				w.ids[ev.RequestID] = true
				w.events = append(w.events, time.Now())
			}
		case *network.EventWebSocketFrameReceived:
			if w.ids[ev.RequestID] {
				w.events = append(w.events, time.Now())
			}
		case *network.EventWebSocketFrameSent:
			if w.ids[ev.RequestID] {
				w.events = append(w.events, time.Now())
			}
		case *network.EventDataReceived:
			if w.ids[ev.RequestID] {
				w.events = append(w.events, time.Now())
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// count returns the events in [from, to) and the wake-ups among them:
// events closer than burst to the one before are one wake-up (a ping and
// its pong, a poll's answer and the next poll).
func (w *wireLog) count(from, to time.Time, burst time.Duration) (events, wakeups int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var last time.Time
	for _, at := range w.events {
		if at.Before(from) || !at.Before(to) {
			continue
		}
		events++
		if last.IsZero() || at.Sub(last) > burst {
			wakeups++
		}
		last = at
	}
	return events, wakeups
}

// After the network goes away and comes back — Chromium offline, the
// WebSocket path through the proxy dead at the same time (emulated
// offline leaves an open WebSocket alone) — the client makes no attempt
// while offline and, at online, reconnects at once from its cursor
// instead of waiting out its backoff (a minute here): the first message
// arrives within 3 s, and every message, those published during the
// outage too, arrives exactly once, in order. The same back onto a
// throttled 3G link, and after the page was frozen and resumed.
func TestClientRecoversOnNetworkChange(t *testing.T) {
	rounds := 1
	if measuring() {
		rounds = 5
	}
	for _, transport := range []string{"ws", "sse", "poll"} {
		t.Run(transport, func(t *testing.T) {
			e := startEdge(t, transports.Config{CORSOrigin: "*"})
			proxy := proxytest.Start(t, e.base, proxytest.Pass)
			options := fmt.Sprintf(`{"transports": [%q], "openTimeout": 5000, "minDelay": 60000, "maxDelay": 60000}`, transport)
			proxy.Handle("/test.html", lifecyclePage(proxy.URL(), []string{"n"}, options))
			b := openTab(t, proxy.URL()+"/test.html")
			wire := listenWire(t, b.browser)
			b.waitOpen()
			want := publishN(e, []string{"n"}, "before", 3)
			b.receivedInOrder(want)

			times := map[string][]float64{}
			for round := range rounds {
				for _, back := range []struct {
					name       string
					conditions []*network.Conditions
				}{{"online", unlimited}, {"3G", fast3G}} {
					b.setNetwork(offline, false)
					proxy.StallUpgraded()
					b.waitTimed(`window.sub.state === "offline"`)
					outage := time.Now()
					want = append(want, publishN(e, []string{"n"}, fmt.Sprintf("%s-outage-%d", back.name, round), 3)...)
					// No attempt while offline: wait a while, then count.
					b.eval(`String(window.quietFrom = performance.now())`)
					b.waitTimed(`performance.now() - window.quietFrom > 300`)
					if n, _ := wire.count(outage, time.Now(), 0); n != 0 {
						t.Fatalf("%d subscribe events on the wire while offline, want none: %s", n, b.report())
					}
					b.setNetwork(back.conditions, true)
					ms := b.firstMessageAfter(`window.netAt.online.at(-1)`)
					times[back.name] = append(times[back.name], ms)
					if ms > 3000 {
						t.Errorf("back %s: the first message came %.0f ms after online, want at most 3 s: %s", back.name, ms, b.report())
					}
					b.receivedInOrder(want)
					want = append(want, publishN(e, []string{"n"}, fmt.Sprintf("%s-after-%d", back.name, round), 3)...)
					b.receivedInOrder(want)
					b.setNetwork(unlimited, true)
				}

				if transport == "ws" {
					// The path breaks while the browser stays online: the
					// client backs off (up to a minute here). An online event
					// (as after a network switch) ends the wait at once.
					proxy.KillUpgraded()
					b.waitTimed(`window.sub.state === "reconnecting" && window.sub.timers.retry !== undefined`)
					want = append(want, publishN(e, []string{"n"}, fmt.Sprintf("backoff-%d", round), 3)...)
					b.eval(`String(dispatchEvent(new Event("online")))`)
					ms := b.firstMessageAfter(`window.netAt.online.at(-1)`)
					times["online during backoff"] = append(times["online during backoff"], ms)
					if ms > 3000 {
						t.Errorf("online during a backoff: the first message came %.0f ms after, want at most 3 s: %s", ms, b.report())
					}
					b.receivedInOrder(want)
				}

				// Frozen (Page Lifecycle), the page closes its connection;
				// resumed, it reconnects from its cursor at once.
				if _, err := chromedp.Call(b.browser, page.SetWebLifecycleState, page.SetWebLifecycleStateParams{State: page.SetWebLifecycleStateStateFrozen}); err != nil {
					t.Fatal(err)
				}
				// A frozen page runs no polling script: evaluate instead.
				b.evalUntil(`window.sub.state === "paused"`)
				want = append(want, publishN(e, []string{"n"}, fmt.Sprintf("frozen-%d", round), 3)...)
				if _, err := chromedp.Call(b.browser, page.SetWebLifecycleState, page.SetWebLifecycleStateParams{State: page.SetWebLifecycleStateStateActive}); err != nil {
					t.Fatal(err)
				}
				b.evalUntil(`window.netAt.resume.length > ` + fmt.Sprint(round))
				ms := b.firstMessageAfter(`window.netAt.resume.at(-1)`)
				times["resume"] = append(times["resume"], ms)
				if ms > 3000 {
					t.Errorf("the first message came %.0f ms after resume, want at most 3 s: %s", ms, b.report())
				}
				b.receivedInOrder(want)
			}
			if errs := b.eval(`window.errors.join(";")`); errs != "" {
				t.Fatalf("errors: %s", errs)
			}
			t.Logf("%s: ms from online to the first message: %v", transport, times)
		})
	}
}

// An idle subscribed page wakes the device once a heartbeat while
// visible; hidden but kept connected (pauseWhenHidden false), it asks
// for the long hidden heartbeat and long-poll hold, and its wire goes
// quiet as negotiated. Timers run 50 times faster than their defaults
// (a 25 s heartbeat is 500 ms here); the counts of Chromium's network
// events are scaled back to an hour. EDGE_MEASURE=1 also measures the
// client without the hidden heartbeat (hiddenHeartbeat equal to
// heartbeat, as before it existed) and with the default pause, over
// longer windows.
func TestClientWireWhenIdle(t *testing.T) {
	const scale = 50
	visibleFor, hiddenFor := 5*time.Second, 12*time.Second
	if measuring() {
		visibleFor, hiddenFor = 30*time.Second, 60*time.Second
	}
	const burst = 5 * time.Second / scale // a radio's tail: events closer than that are one wake-up
	e := startEdge(t, transports.Config{CORSOrigin: "*", Heartbeat: 25 * time.Second / scale, HeartbeatMin: 100 * time.Millisecond})
	scaled := func(d time.Duration) string { return fmt.Sprint((d / scale).Milliseconds()) }
	short := fmt.Sprintf(`"heartbeat": %s, "pollTimeout": %s, "hiddenDelay": 0`, scaled(25*time.Second), scaled(25*time.Second))
	long := fmt.Sprintf(`"hiddenHeartbeat": %s, "hiddenPollTimeout": %s`, scaled(120*time.Second), scaled(60*time.Second))
	type page struct {
		transport, config, options string
		quiet                      float64 // most hidden wake-ups per visible one
		opensHidden                bool    // opened in a background tab: paused from the start
	}
	// A page opened hidden pauses before it is ever visible.
	pages := []page{{"ws", "opened hidden", fmt.Sprintf(`{"transports": ["ws"], %s}`, short), 0, true}}
	for _, tr := range []string{"ws", "sse", "poll"} {
		quiet := 0.4 // 120 s against 25 s
		if tr == "poll" {
			quiet = 0.6 // 60 s against 25 s
		}
		pages = append(pages, page{tr, "hidden heartbeat", fmt.Sprintf(`{"transports": [%q], %s, "pauseWhenHidden": false, %s}`, tr, short, long), quiet, false})
		if measuring() {
			pages = append(pages,
				page{tr, "no hidden heartbeat", fmt.Sprintf(`{"transports": [%q], %s, "pauseWhenHidden": false, "hiddenHeartbeat": %s, "hiddenPollTimeout": %s}`, tr, short, scaled(25*time.Second), scaled(25*time.Second)), 1.5, false},
				page{tr, "pause (default)", fmt.Sprintf(`{"transports": [%q], %s}`, tr, short), 0, false})
		}
	}

	pagesMux := http.NewServeMux()
	site := httptest.NewServer(pagesMux)
	defer site.Close()
	browser := browsertest.Start(t)
	tabs := make([]*tab, len(pages))
	wires := make([]*wireLog, len(pages))
	for i, p := range pages {
		path := fmt.Sprintf("/idle-%d.html", i)
		pagesMux.Handle(path, lifecyclePage(e.base, []string{"idle"}, p.options))
		ctx := browser
		if i > 0 {
			ctx, _ = chromedp.NewContext(browser) // a tab of the same browser, closed with it
		}
		tabs[i] = &tab{t, ctx}
		wires[i] = listenWire(t, ctx)
		if p.opensHidden {
			path += "?visibility=hidden"
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(site.URL+path)); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range tabs {
		if pages[i].opensHidden {
			b.waitTimed(`window.sub.state === "paused"`)
			continue
		}
		b.waitOpen()
	}
	perHour := func(n int, d time.Duration) float64 { return float64(n) * float64(time.Hour) / float64(d*scale) }

	from := time.Now()
	waitFor(visibleFor)
	visibleEnd := time.Now()
	for _, b := range tabs {
		b.eval(`window.hide()`)
	}
	for i, p := range pages {
		switch {
		case p.quiet == 0:
			tabs[i].waitTimed(`window.sub.state === "paused"`)
		case p.transport != "poll":
			tabs[i].waitTimed(`window.sub.state === "open" && window.sub.link.beat === window.sub.opts.hiddenHeartbeat`)
		default:
			tabs[i].waitTimed(`window.sub.link && window.sub.link.long === true`)
		}
	}
	hiddenFrom := time.Now()
	waitFor(hiddenFor)
	hiddenEnd := time.Now()
	for _, b := range tabs {
		b.eval(`window.show()`)
	}
	want := publishN(e, []string{"idle"}, "back", 2)
	for i, p := range pages {
		ve, vw := wires[i].count(from, visibleEnd, burst)
		he, hw := wires[i].count(hiddenFrom, hiddenEnd, burst)
		t.Logf("%-4s %-20s per idle hour: visible %4.0f events, %4.0f wake-ups; hidden %4.0f events, %4.0f wake-ups",
			p.transport, p.config, perHour(ve, visibleEnd.Sub(from)), perHour(vw, visibleEnd.Sub(from)), perHour(he, hiddenEnd.Sub(hiddenFrom)), perHour(hw, hiddenEnd.Sub(hiddenFrom)))
		if p.opensHidden {
			if ve+he > 0 {
				t.Errorf("a page opened hidden: %d events visible and %d hidden on the wire, want none", ve, he)
			}
		} else if vw == 0 || float64(hw) > p.quiet*float64(vw)*float64(hiddenEnd.Sub(hiddenFrom))/float64(visibleEnd.Sub(from)) {
			t.Errorf("%s, %s: %d wake-ups in %v visible, %d in %v hidden; want hidden at most %.1f times as many per hour",
				p.transport, p.config, vw, visibleEnd.Sub(from), hw, hiddenEnd.Sub(hiddenFrom), p.quiet)
		}
		tabs[i].receivedInOrder(want)
		if p.transport != "poll" {
			tabs[i].waitTimed(`window.sub.state === "open" && window.sub.link.beat === window.sub.opts.heartbeat`)
		}
	}
}

// waitFor lets d pass: the page is left idle for a measured window.
func waitFor(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	<-timer.C
}
