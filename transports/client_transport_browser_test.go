package transports_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgeworks/edge/transports"
	"github.com/edgeworks/edge/transports/internal/proxytest"
)

// timedPageHTML subscribes like clientPageHTML and also records when
// (ms after subscribe()) and over which transport each message arrived,
// and every state change's info. The page runs prelude first.
const timedPageHTML = `<!doctype html><title>timed</title><script type="module">
import { subscribe } from %q;
%s
window.got = []; window.at = []; window.via = []; window.states = []; window.stateAt = []; window.infos = []; window.reasons = []; window.errors = [];
window.probeText = (list) => list.map((p) => [p.transport, p.outcome, p.status || p.code].filter(Boolean).join(":")).join(" ");
window.probeList = () => window.probeText(window.sub.probes);
window.t0 = performance.now();
window.sub = subscribe(%q, %s, Object.assign({
  onMessage: (m) => {
    window.got.push(m.channel + "/" + m.data);
    window.at.push(performance.now() - window.t0);
    window.via.push(window.sub.transport);
  },
  onStateChange: (s, info) => {
    window.states.push(s + ":" + info.transport);
    window.stateAt.push(performance.now() - window.t0);
    window.infos.push(info);
    if (info.error) window.reasons.push(info.error.message);
  },
  onError: (e) => window.errors.push(e.code + ": " + e.message),
}, %s));
</script>`

func timedPage(base string, channels []string, prelude, options string) http.HandlerFunc {
	list, _ := json.Marshal(channels)
	html := fmt.Sprintf(timedPageHTML, base+"/v1/client.js", prelude, base, list, options)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, html)
	}
}

// waitTransport waits until the client is open on transport.
func (b *tab) waitTransport(transport string) {
	b.t.Helper()
	b.wait(fmt.Sprintf(`window.sub && window.sub.state === "open" && window.sub.transport === %q`, transport))
}

// firstMessage publishes data to channel as soon as the client is open
// (its onStateChange said "open") and returns the time from subscribe()
// to its arrival.
func (b *tab) firstMessage(e *testEdge, channel, data string) time.Duration {
	b.t.Helper()
	b.wait(`window.sub && window.sub.state === "open"`)
	e.publish(channel, data)
	entry := channel + "/" + data
	b.wait(fmt.Sprintf(`window.got.includes(%q)`, entry))
	ms, err := chromedp.Run(b.browser, chromedp.Evaluate[float64](fmt.Sprintf(`window.at[window.got.indexOf(%q)]`, entry)))
	if err != nil {
		b.t.Fatal(err)
	}
	return time.Duration(ms * float64(time.Millisecond))
}

// stream publishes s-0, s-1, … to channel every 20 ms from its own
// goroutine until stop, and returns what it published.
type stream struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex // mu guards sent, err
	sent []string
	err  error
}

func startStream(e *testEdge, channel string) *stream {
	s := &stream{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			data := fmt.Sprintf("s-%d", i)
			_, err := e.tryPublish(channel, "", data)
			s.mu.Lock()
			if err != nil {
				s.err = err
			} else {
				s.sent = append(s.sent, channel+"/"+data)
			}
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return s
}

// end stops the stream and returns what it published.
func (s *stream) end(t *testing.T) []string {
	t.Helper()
	close(s.stop)
	<-s.done
	if s.err != nil {
		t.Fatalf("stream: %v", s.err)
	}
	return s.sent
}

// ttfmModes are the proxies the client is timed behind: the transport it
// ends up on, and the outcomes of its attempts on the way.
var ttfmModes = []struct {
	name   string
	mode   proxytest.Mode
	want   string
	probes string
}{
	{"direct", proxytest.Pass, "ws", "poll:ok ws:ok"},
	{"refused upgrade", proxytest.RefuseUpgrades, "sse", "poll:ok ws:failed:1006 sse:ok"},
	{"hanging upgrade", proxytest.HangUpgrades, "sse", "poll:ok ws:timeout sse:ok"},
	{"buffering proxy", proxytest.Buffer, "poll", "poll:ok ws:failed:1006 sse:timeout"},
	{"idle-cutting proxy", proxytest.CutIdle, "ws", "poll:ok ws:ok"},
}

// ttfmLimit is what the tests assert of the time from subscribe() to the
// first message published after the client said it was open: the client
// needs one poll round trip, but two busy cores under -race need margin.
const ttfmLimit = 3 * time.Second

// Behind every test proxy, the first message published after the client
// is open arrives within ttfmLimit of subscribe(): the client starts on
// long-polling (whose first poll answers at once) and probes WebSocket and
// SSE in the background. It moves to the best proven one while a stream
// of messages is published, and receives each exactly once, in order. Its
// probes say why it is where it is. A new tab of the same origin starts
// on the remembered transport directly, as fast.
//
// EDGE_TTFM_RUNS=n repeats each case n times and logs the times (run it
// without -race for the README's numbers).
func TestClientFirstMessageBehindProxies(t *testing.T) {
	runs := 1
	if v := os.Getenv("EDGE_TTFM_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("EDGE_TTFM_RUNS=%q: want a count", v)
		}
		runs = n
	}
	for _, tc := range ttfmModes {
		t.Run(tc.name, func(t *testing.T) {
			for run := range runs {
				fresh, primed, settled := ttfmRun(t, tc.mode, tc.want, tc.probes)
				t.Logf("ttfm %s run %d: first message %v after subscribe (fresh), %v (remembered %s); on %s after %v",
					tc.name, run, fresh.Round(time.Millisecond), primed.Round(time.Millisecond), tc.want, tc.want, settled.Round(time.Millisecond))
			}
		})
	}
}

// ttfmRun is one run of TestClientFirstMessageBehindProxies behind a
// proxy in mode: the times to the first message fresh and with the
// transport remembered, and the time the client took to settle on want.
func ttfmRun(t *testing.T, mode proxytest.Mode, want, probes string) (fresh, primed, settled time.Duration) {
	e := startEdge(t, transports.Config{CORSOrigin: "*", HeartbeatMin: time.Second})
	proxy := proxytest.Start(t, e.base, mode)
	proxy.Handle("/test.html", timedPage(proxy.URL(), []string{"a", "s"}, "", `{"minDelay": 20, "maxDelay": 300, "probeTimeout": 2000, "heartbeat": 1000}`))

	// The stream runs from before subscribe() until after the switch.
	s := startStream(e, "s")
	b := openTab(t, proxy.URL()+"/test.html")
	fresh = b.firstMessage(e, "a", "first")
	if fresh > ttfmLimit {
		t.Errorf("first message %v after subscribe(), want at most %v; %s", fresh, ttfmLimit, b.report())
	}
	if first := b.eval(`window.states[0]`); first != "connecting:poll" {
		t.Errorf("first state %q, want connecting:poll", first)
	}
	b.wait(fmt.Sprintf(`window.sub.transport === %q && window.probeList() === %q`, want, probes))
	settledMS, err := chromedp.Run(b.browser, chromedp.Evaluate[float64](`window.stateAt[window.stateAt.length - 1]`))
	if err != nil {
		t.Fatal(err)
	}
	settled = time.Duration(settledMS * float64(time.Millisecond))
	// The last state change says where the client is and why.
	if got := b.eval(`(() => { const i = window.infos[window.infos.length - 1]; return i.transport + " " + window.probeText(i.probes); })()`); got != want+" "+probes {
		t.Errorf("the last state change reported %q, want %q", got, want+" "+probes)
	}
	t.Logf("probes: %s", b.eval(`JSON.stringify(window.sub.probes)`))
	if want != "poll" {
		b.wait(fmt.Sprintf(`window.states.includes("open:poll") && window.states[window.states.length - 1] === "open:%s"`, want))
	}
	// The old link and the abandoned probes hold nothing at the edge.
	onlyOn(t, e, want)
	// 20 more stream messages on the new transport, then the end.
	b.wait(fmt.Sprintf(`window.via.filter((v, i) => v === %q && window.got[i].startsWith("s/")).length >= 20`, want))
	sent := s.end(t)
	b.wait(fmt.Sprintf(`window.got.includes(%q)`, sent[len(sent)-1]))
	exactlyOnce(t, b, sent)

	if mode == proxytest.CutIdle {
		idleCut(t, e, proxy, b)
	}

	// A new tab of the origin starts on the remembered transport.
	b.eval(`(window.sub.close(), "")`)
	b2 := newTab(t, b, proxy.URL()+"/test.html")
	primed = b2.firstMessage(e, "a", "second")
	if primed > ttfmLimit {
		t.Errorf("remembered: first message %v after subscribe(), want at most %v; %s", primed, ttfmLimit, b2.report())
	}
	if got := b2.eval(`window.states.slice(0, 2).join(" ")`); got != "connecting:"+want+" open:"+want {
		t.Errorf("with the transport remembered the client went %q, want connecting:%s open:%s", got, want, want)
	}
	if got := b2.eval(`window.probeList()`); got != want+":ok" {
		t.Errorf("with the transport remembered the client probed %q, want %s:ok", got, want)
	}
	return fresh, primed, settled
}

// exactlyOnce checks that the page got a contiguous run of sent, ending
// with its last: each published message after the client's start, once,
// in order, whichever transport brought it.
func exactlyOnce(t *testing.T, b *tab, sent []string) {
	t.Helper()
	got, err := chromedp.Run(b.browser, chromedp.Evaluate[[]string](`window.got.filter((m) => m.startsWith("s/"))`))
	if err != nil {
		t.Fatal(err)
	}
	via, err := chromedp.Run(b.browser, chromedp.Evaluate[[]string](`window.via.filter((_, i) => window.got[i].startsWith("s/"))`))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || len(got) > len(sent) {
		t.Fatalf("the page got %d of %d stream messages", len(got), len(sent))
	}
	tail := sent[len(sent)-len(got):]
	if strings.Join(got, " ") != strings.Join(tail, " ") {
		t.Fatalf("the page got the stream %q,\nwant the end of %q\npage: %s", got, sent, b.report())
	}
	counts := map[string]int{}
	for _, v := range via {
		counts[v]++
	}
	t.Logf("stream: %d of %d messages, exactly once, in order; by transport %v", len(got), len(sent), counts)
}

// idleCut checks the client behind CutIdle: with heartbeats (1 s) more
// frequent than the idle period (2 s) its WebSocket stays up while idle;
// with a period shorter than the heartbeat, the connection is cut again
// and again and the client reconnects from its cursor each time, losing
// and repeating nothing.
func idleCut(t *testing.T, e *testEdge, proxy *proxytest.Proxy, b *tab) {
	t.Helper()
	upgrades := proxy.Upgrades()
	b.eval(`String(window.idleSince = performance.now())`)
	b.wait(`performance.now() - window.idleSince > 3000`)
	if b.eval(`window.sub.state + ":" + window.sub.transport`) != "open:ws" || proxy.Upgrades() != upgrades {
		t.Fatalf("the heartbeat did not keep the connection: %d upgrades after %d; %s", proxy.Upgrades(), upgrades, b.report())
	}
	// Published further apart than the period, so each finds the
	// connection cut or about to be.
	proxy.CutIdleAfter(300 * time.Millisecond)
	before := b.eval(`String(window.got.length)`)
	var want []string
	tick := time.NewTicker(400 * time.Millisecond)
	defer tick.Stop()
	for i := range 6 {
		<-tick.C
		data := fmt.Sprintf("cut-%d", i)
		e.publish("a", data)
		want = append(want, "a/"+data)
	}
	b.wait(fmt.Sprintf(`window.got.includes(%q)`, want[len(want)-1]))
	got := b.eval(fmt.Sprintf(`window.got.slice(%s).join(" ")`, before))
	if got != strings.Join(want, " ") {
		t.Fatalf("across idle cuts the page got %q, want %q", got, want)
	}
	if proxy.Upgrades() == upgrades || proxy.Cuts() == 0 {
		t.Fatalf("no reconnect across idle cuts: %d upgrades, %d cuts", proxy.Upgrades(), proxy.Cuts())
	}
	proxy.CutIdleAfter(proxytest.DefaultIdleCut)
}

// newTab opens pageURL in a new tab of b's browser: same profile, so the
// same localStorage, but a sessionStorage of its own.
func newTab(t *testing.T, b *tab, pageURL string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
		t.Fatal(err)
	}
	return &tab{t, ctx}
}

// The transport the client remembers for an origin: a remembered one that
// no longer gets through costs one probeTimeout before the client is on
// long-polling and probing again; where localStorage is refused it
// remembers in the tab's sessionStorage; after rememberFor it starts
// afresh.
func TestClientRemembersPerOrigin(t *testing.T) {
	const noLocalStorage = `Object.defineProperty(window, "localStorage", {configurable: true, get() { throw new DOMException("denied", "SecurityError"); }});`
	for _, tc := range []struct {
		name     string
		prelude  string
		options  string
		then     proxytest.Mode // the proxy's mode for the second page
		sameTab  bool           // reload the tab instead of opening another
		states   string         // the second page's first states
		probes   string         // the second page's attempts once on want
		want     string
		storedIn string
	}{
		{"remembered transport gone", "", "", proxytest.HangUpgrades, false,
			"connecting:ws reconnecting:poll open:poll", "ws:timeout poll:ok ws:timeout sse:ok", "sse", "localStorage"},
		{"localStorage refused, same tab", noLocalStorage, "", proxytest.Pass, true,
			"connecting:ws open:ws", "ws:ok", "ws", "sessionStorage"},
		{"localStorage refused, other tab", noLocalStorage, "", proxytest.Pass, false,
			"connecting:poll open:poll open:ws", "poll:ok ws:ok", "ws", "sessionStorage"},
		{"expired", "", `"rememberFor": 1,`, proxytest.Pass, false,
			"connecting:poll open:poll open:ws", "poll:ok ws:ok", "ws", "localStorage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEdge(t, transports.Config{CORSOrigin: "*"})
			proxy := proxytest.Start(t, e.base, proxytest.Pass)
			proxy.Handle("/test.html", timedPage(proxy.URL(), []string{"r"}, tc.prelude, `{`+tc.options+` "minDelay": 20, "maxDelay": 300, "probeTimeout": 2000}`))
			b := openTab(t, proxy.URL()+"/test.html")
			b.waitTransport("ws")
			key := fmt.Sprintf(`"edge.transport:%s"`, proxy.URL())
			if got := b.eval(fmt.Sprintf(`JSON.parse(window[%q].getItem(%s)).transport`, tc.storedIn, key)); got != "ws" {
				t.Fatalf("%s remembers %q, want ws", tc.storedIn, got)
			}
			proxy.SetMode(tc.then)
			b2 := b
			if tc.sameTab {
				if err := chromedp.Do(b.browser, chromedp.Reload()); err != nil {
					t.Fatal(err)
				}
			} else {
				b.eval(`(window.sub.close(), "")`)
				b2 = newTab(t, b, proxy.URL()+"/test.html")
			}
			// A remembered transport that does not get through costs its
			// probeTimeout before long-polling starts.
			limit := ttfmLimit
			if tc.then != proxytest.Pass {
				limit += 2 * time.Second
			}
			if d := b2.firstMessage(e, "r", "first"); d > limit {
				t.Errorf("first message %v after subscribe(), want at most %v; %s", d, limit, b2.report())
			}
			b2.wait(fmt.Sprintf(`window.sub.transport === %q && window.probeList() === %q`, tc.want, tc.probes))
			n := strings.Count(tc.states, " ") + 1
			if got := b2.eval(fmt.Sprintf(`window.states.slice(0, %d).join(" ")`, n)); got != tc.states {
				t.Errorf("states %q, want %q", got, tc.states)
			}
		})
	}
}

// A probe that something other than the edge answers with an HTTP error
// is reported as refused, with its status; the client stays on
// long-polling and delivers.
func TestClientReportsRefusedProbe(t *testing.T) {
	e := startEdge(t, transports.Config{CORSOrigin: "*"})
	proxy := proxytest.Start(t, e.base, proxytest.RefuseUpgrades)
	upstream, err := url.Parse(e.base)
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(upstream)
	proxy.Handle("/v1/subscribe", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tr := r.URL.Query().Get("transport"); tr != "poll" {
			http.Error(w, "not through this proxy", http.StatusForbidden)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	proxy.Handle("/test.html", timedPage(proxy.URL(), []string{"r"}, "", `{"probeTimeout": 1000}`))
	b := openTab(t, proxy.URL()+"/test.html")
	if d := b.firstMessage(e, "r", "first"); d > ttfmLimit {
		t.Errorf("first message %v after subscribe(), want at most %v", d, ttfmLimit)
	}
	const want = "poll:ok ws:failed:1006 sse:refused:403"
	b.wait(fmt.Sprintf(`window.probeList() === %q`, want))
	if got := b.eval(`window.sub.transport + " " + window.sub.probes[2].error`); got != "poll sse: HTTP 403 from something that is not the edge" {
		t.Errorf("got %q", got)
	}
}

// onlyOn waits until the edge holds no connection of a transport other
// than want: the link the client moved from and the probes it abandoned
// are gone.
func onlyOn(t *testing.T, e *testEdge, want string) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		var held []string
		samples := scrape(t, e)
		for _, tr := range []string{"ws", "sse", "poll"} {
			if n, ok := value(samples, "edge_connections", "transport", tr); ok && n != 0 && tr != want {
				held = append(held, fmt.Sprintf("%s=%v", tr, n))
			}
		}
		if len(held) == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("on %s, the edge still holds connections %v", want, held)
		}
	}
}
