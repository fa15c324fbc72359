package transports_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgeworks/edge/transports"
	"github.com/edgeworks/edge/transports/internal/browsertest"
)

// The status page and its stream are served at /status and
// /status/events, to GET and HEAD only.
func TestStatusPageRoutes(t *testing.T) {
	e := startEdge(t, transports.Config{})
	resp, err := http.Get(e.url("/status"))
	if err != nil {
		t.Fatal(err)
	}
	drain(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET /status: %d %q, CSP %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"))
	}
	head, err := http.Head(e.url("/status"))
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != 200 {
		t.Fatalf("HEAD /status: %d", head.StatusCode)
	}
	post, err := http.Post(e.url("/status/events"), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /status/events: %d, want 405", post.StatusCode)
	}

	events := openSSE(t, e.url("/status/events"), nil)
	if ct := events.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("GET /status/events: Content-Type %q", ct)
	}
	if ev := events.next(); ev.Event != "history" || !strings.HasPrefix(ev.Data, "[") {
		t.Fatalf("first event %+v, want the history", ev)
	}
	ev := events.next()
	var p struct {
		Connections map[string]int64
		Store       string
	}
	if err := json.Unmarshal([]byte(ev.Data), &p); ev.Event != "sample" || err != nil || p.Store != "memory" || len(p.Connections) != 3 {
		t.Fatalf("second event %+v (%v), want a sample of the memory store", ev, err)
	}
}

// The status page, in headless Chromium at 1000×700, shows live numbers
// and charts of a real edge with subscribers on every transport and a
// steady publisher; the screenshot shows the charts' lines.
func TestStatusPageShowsLiveData(t *testing.T) {
	e := startEdge(t, transports.Config{})
	const channel = "status-demo"
	const ws, sse = 3, 2 // and one long-poll: three levels on the chart

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var closers []func()
	for range ws {
		c := dialWS(t, e.wsURL("channel", channel))
		closers = append(closers, func() { c.conn.Close() })
		wg.Go(func() {
			for {
				if _, _, err := c.conn.ReadMessage(); err != nil {
					return
				}
			}
		})
	}
	for range sse {
		c := openSSE(t, e.url("/v1/subscribe", "channel", channel), nil)
		closers = append(closers, c.close)
		wg.Go(func() {
			for range c.events {
			}
		})
	}
	wg.Go(func() { pollSteadily(ctx, e, channel) })
	var published atomic.Int64
	wg.Go(func() { publishSteadily(ctx, e, channel, &published) })
	t.Cleanup(func() {
		cancel()
		for _, c := range closers {
			c()
		}
		wg.Wait()
	})

	b := &tab{t, browsertest.Start(t)}
	if err := chromedp.Do(b.browser, chromedp.EmulateViewport(1000, 700), chromedp.Navigate(e.url("/status"))); err != nil {
		t.Fatal(err)
	}
	b.wait(`document.title === "edge status"`)
	value := func(id string) string {
		return fmt.Sprintf(`Number(document.getElementById(%q).dataset.value || "NaN")`, id)
	}
	b.wait(fmt.Sprintf(`%s === %d && %s === %d && %s === 1 && %s > 0 && %s > 0 && %s >= 0 && Number(document.body.dataset.points) >= 6`,
		value("conn-ws"), ws, value("conn-sse"), sse, value("conn-poll"), value("rate-published"), value("rate-delivered"), value("lat-p99")))
	if live := b.eval(`document.getElementById("live-text").textContent`); live != "live" {
		t.Fatalf("the page says %q, want live", live)
	}
	if store := b.eval(`document.getElementById("store-text").textContent`); store != "memory · ready" {
		t.Fatalf("the page says the store is %q", store)
	}
	pub := evalNumber(b, value("rate-published"))
	del := evalNumber(b, value("rate-delivered"))
	p99 := evalNumber(b, value("lat-p99"))
	if pub < 5 || pub > 200 || del < pub || p99 > 1000 {
		t.Fatalf("the page shows %v published/s, %v delivered/s, p99 %v ms; the test publishes about 30/s to %d subscribers on loopback", pub, del, p99, ws+sse+1)
	}
	for _, id := range []string{"legend-ws", "legend-published", "legend-p50", "lat-p99", "sessions"} {
		if text := b.eval(fmt.Sprintf(`document.getElementById(%q).textContent`, id)); text == "" || text == "–" {
			t.Errorf("#%s shows %q", id, text)
		}
	}

	shot, err := chromedp.Run(b.browser, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("EDGE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "status.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d messages published)", path, published.Load())
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if w := img.Bounds().Dx(); w != 1000 {
		t.Fatalf("the screenshot is %d px wide, want 1000", w)
	}
	// Each chart's plot area has pixels of each of its lines' colours.
	for chart, colors := range map[string]map[string]uint32{
		"chart-connections": {"ws": 0x2563eb, "sse": 0x16a34a, "poll": 0xea580c},
		"chart-rates":       {"published": 0x7c3aed, "delivered": 0x0891b2},
		"chart-latency":     {"p50": 0x0d9488, "p90": 0xd97706, "p99": 0xdc2626},
	} {
		box := elementRect(b, fmt.Sprintf(`#%s .plot`, chart))
		for name, rgb := range colors {
			if n := countColor(img, box, rgb); n < 10 {
				t.Errorf("%s: %d pixels of the %s line (#%06x) in %v", chart, n, name, rgb, box)
			}
		}
	}
}

// evalNumber evaluates a numeric expression in the page.
func evalNumber(b *tab, expr string) float64 {
	b.t.Helper()
	v, err := chromedp.Run(b.browser, chromedp.Evaluate[float64](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// elementRect returns the rectangle of the element that selector
// matches, in the viewport's pixels.
func elementRect(b *tab, selector string) image.Rectangle {
	b.t.Helper()
	r := b.eval(fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom].map(Math.round).join(","); })()`, selector))
	var v [4]int
	for i, s := range strings.Split(r, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || i >= len(v) {
			b.t.Fatalf("rectangle of %s: %q", selector, r)
		}
		v[i] = n
	}
	return image.Rect(v[0], v[1], v[2], v[3])
}

// countColor counts the pixels of img within box that are close to rgb.
func countColor(img image.Image, box image.Rectangle, rgb uint32) int {
	near := func(a uint32, b uint32) bool { d := int(a>>8) - int(b); return d > -24 && d < 24 }
	n := 0
	box = box.Intersect(img.Bounds())
	for y := box.Min.Y; y < box.Max.Y; y++ {
		for x := box.Min.X; x < box.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r, rgb>>16&0xff) && near(g, rgb>>8&0xff) && near(bl, rgb&0xff) {
				n++
			}
		}
	}
	return n
}

// pollSteadily long-polls channel until ctx is done, lingering so that a
// poll is waiting most of the time.
func pollSteadily(ctx context.Context, e *testEdge, channel string) {
	cursor := ""
	for ctx.Err() == nil {
		q := []string{"channel", channel, "transport", "poll", "linger", "2s"}
		if cursor != "" {
			q = append(q, "since", cursor)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url("/v1/subscribe", q...), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		var a pollAnswer
		err = json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			return
		}
		cursor = a.Cursor
	}
}

// publishSteadily publishes to channel about 30 times a second, in a
// sawtooth so that the charts have a shape, until ctx is done or a
// minute has passed.
func publishSteadily(ctx context.Context, e *testEdge, channel string, n *atomic.Int64) {
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTimer(0)
	defer tick.Stop()
	for i := 0; time.Now().Before(deadline); i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.url("/v1/publish", "channel", channel), strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		drain(resp.Body)
		resp.Body.Close()
		n.Add(1)
		tick.Reset(time.Duration(10+i%50) * time.Millisecond)
	}
}
