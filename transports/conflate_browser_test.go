package transports_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgeworks/edge/transports"
	"github.com/edgeworks/edge/transports/internal/browsertest"
)

// conflatedPage is a dashboard that uses nothing but EventSource, and
// keeps each message's data and lastEventId.
const conflatedPage = `<!doctype html><script>
window.got = []; window.opens = 0;
const es = new EventSource(%q);
es.onopen = () => { window.opens++; };
es.onmessage = (e) => { window.got.push(e.lastEventId + " " + e.data); };
</script>`

// A page with a plain new EventSource(url + "&conflate=1s") gets the
// conflated stream: the first message at once, then a burst as the
// newest of each key, with their ids.
func TestBrowserEventSourceConflates(t *testing.T) {
	browser := browsertest.Start(t)
	e := startEdge(t, transports.Config{CORSOrigin: "*"})
	first := e.publish("dash", "first")
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, conflatedPage, e.url("/v1/subscribe", "channel", "dash")+"&conflate=1s")
	}))
	defer page.Close()
	if err := chromedp.Do(browser, chromedp.Navigate(page.URL)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, browser, `window.opens >= 1`)
	lead := publishKey(t, e, "dash", "a", "lead")
	waitJS(t, browser, `window.got.length >= 1`)
	burst := publishBurst(t, e, "dash", 50)
	waitJS(t, browser, fmt.Sprintf(`window.got.some(g => g.startsWith(%q))`, burst[len(burst)-1]+" "))
	got, err := chromedp.Run(browser, chromedp.Evaluate[[]string](`window.got`))
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != lead+" lead" {
		t.Fatalf("the page got %q first, want the lead message %s", got[0], lead)
	}
	checkConflated(t, "dash", pageItems(t, "dash", got[1:]), historyAfter(t, e, "dash", first), burst)
}

// pageItems parses the page's "<id> <data>" records.
func pageItems(t *testing.T, channel string, records []string) []cfItem {
	t.Helper()
	out := make([]cfItem, len(records))
	for i, r := range records {
		id, data, ok := strings.Cut(r, " ")
		if !ok {
			t.Fatalf("record %q", r)
		}
		out[i] = cfItem{channel: channel, id: id, data: data}
	}
	return out
}

// historyAfter returns channel's history after the id since.
func historyAfter(t *testing.T, e *testEdge, channel, since string) []wireMessage {
	t.Helper()
	hist := historyMessages(t, e, channel)
	i := slices.IndexFunc(hist, func(m wireMessage) bool { return m.ID == since })
	return hist[i+1:]
}

// A curl-style client (raw HTTP/1.1 over TCP, no library) gets the
// conflated stream over SSE, and the conflated answer over long-poll.
func TestRawHTTPConflates(t *testing.T) {
	e := startEdge(t, transports.Config{})
	for _, tr := range []string{"sse", "poll"} {
		t.Run(tr, func(t *testing.T) {
			ch := "raw-" + tr
			first := e.publish(ch, "first")
			var lead string
			var burst []string
			if tr == "poll" { // what a poll with conflate answers from history
				lead = publishKey(t, e, ch, "a", "lead")
				burst = publishBurst(t, e, ch, 50)
			}
			conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			q := url.Values{"channel": {ch}, "since": {first}, "conflate": {"1s"}, "transport": {tr}}
			fmt.Fprintf(conn, "GET /v1/subscribe?%s HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n", q.Encode())
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("response %v: %v", resp, err)
			}
			hist := func() []wireMessage { return historyAfter(t, e, ch, first) }
			if tr == "poll" {
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				var a pollAnswer
				if err := json.Unmarshal(body, &a); err != nil {
					t.Fatalf("poll answer %s: %v", body, err)
				}
				h := hist()
				na, nb := newestOf(h, "a#"), newestOf(h, "b#")
				if want := []wireMessage{na, nb}; !slices.Equal(a.Messages, want) || a.Cursor != burst[len(burst)-1] || a.Gap {
					t.Fatalf("poll answer %s, want %+v and the cursor at %s", body, want, burst[len(burst)-1])
				}
				return
			}
			sc := bufio.NewScanner(resp.Body)
			var got []cfItem
			var id string
			for len(burst) == 0 || got[len(got)-1].id != burst[len(burst)-1] {
				if !sc.Scan() {
					t.Fatalf("stream ended: %v", sc.Err())
				}
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "id: "):
					id = line[len("id: "):]
				case strings.HasPrefix(line, "data: "):
					got = append(got, cfItem{channel: ch, id: id, data: line[len("data: "):]})
				case line == "" && id == first && lead == "": // live: the id-only event
					lead = publishKey(t, e, ch, "a", "lead")
				case line == "" && len(got) == 1 && burst == nil:
					if got[0] != (cfItem{channel: ch, id: lead, data: "lead"}) {
						t.Fatalf("first event %+v, want the lead message %s", got[0], lead)
					}
					burst = publishBurst(t, e, ch, 50)
				}
			}
			checkConflated(t, ch, got[1:], hist(), burst)
		})
	}
}

// client.js sends its conflate option on every transport and hands the
// page the conflated stream: the newest of each key of a burst.
func TestClientConflates(t *testing.T) {
	e := startEdge(t, transports.Config{CORSOrigin: "*"})
	for _, tr := range []string{"ws", "sse", "poll"} {
		t.Run(tr, func(t *testing.T) {
			ch := "cf-" + tr
			page := httptest.NewServer(clientPage(e.base, []string{ch}, fmt.Sprintf(`{"transports": [%q], "conflate": "1s"}`, tr)))
			defer page.Close()
			b := openTab(t, page.URL)
			b.waitOpen()
			publishKey(t, e, ch, "a", "lead")
			b.received([]string{ch + "/lead"})
			burst := publishBurst(t, e, ch, 50)
			b.wait(fmt.Sprintf(`window.got.includes(%q)`, ch+"/b#49"))
			got, err := chromedp.Run(b.browser, chromedp.Evaluate[[]string](`window.got`))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) > 1+10 || !slices.Contains(got, ch+"/a#48") {
				t.Fatalf("the page got %q of a burst of %d, want at most 10 of it, with a#48 and b#49", got[1:], len(burst))
			}
			// The page records what it fetches (not WebSocket URLs, whose
			// conflation the bound above shows).
			if urls := b.eval(`window.urls.join(" ")`); tr != "ws" && !strings.Contains(urls, "conflate=1s") {
				t.Fatalf("the client asked for %s, want conflate=1s", urls)
			}
		})
	}
}

// client.js's compress option asks for a compressed stream on every
// transport, which the browser decodes: the page gets its messages, over
// a gzip stream or a deflate WebSocket the edge counts.
func TestClientCompresses(t *testing.T) {
	e := startEdge(t, transports.Config{CORSOrigin: "*"})
	for _, tr := range []string{"ws", "sse", "poll"} {
		t.Run(tr, func(t *testing.T) {
			ch := "cz-" + tr
			page := httptest.NewServer(clientPage(e.base, []string{ch}, fmt.Sprintf(`{"transports": [%q], "compress": true}`, tr)))
			defer page.Close()
			b := openTab(t, page.URL)
			b.waitOpen()
			publishKey(t, e, ch, "a", "first")
			b.received([]string{ch + "/first"})
			if tr == "poll" {
				if urls := b.eval(`window.urls.join(" ")`); !strings.Contains(urls, "compress=1") {
					t.Fatalf("the client asked for %s, want compress=1", urls)
				}
				return
			}
			if n, _ := value(scrape(t, e), "edge_compressed_streams"); n < 1 {
				t.Fatalf("edge_compressed_streams %v while the page is open, want at least 1", n)
			}
		})
	}
}
