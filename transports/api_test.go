package transports_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/transports"
)

func TestPublishAndHistory(t *testing.T) {
	e := startEdge(t, transports.Config{})
	var ids []string
	for i := range 5 {
		ids = append(ids, e.publish("news", fmt.Sprintf("m%d", i)))
	}
	for i := 1; i < len(ids); i++ {
		a, _ := edge.ParseID(ids[i-1])
		b, _ := edge.ParseID(ids[i])
		if !a.Less(b) {
			t.Fatalf("ids not increasing: %s then %s", ids[i-1], ids[i])
		}
	}
	type page struct {
		Channel  string
		Messages []wireMessage
		Cursor   string
		Gap      bool
		More     bool
	}
	var p page
	if st := getJSON(t, e.url("/v1/history", "channel", "news", "limit", "2"), nil, &p); st != 200 {
		t.Fatalf("status %d", st)
	}
	if len(p.Messages) != 2 || p.Messages[0].Data != "m0" || !p.More || p.Cursor != ids[1] {
		t.Fatalf("first page = %+v", p)
	}
	var got []string
	for cursor := ""; ; {
		var p page
		getJSON(t, e.url("/v1/history", "channel", "news", "limit", "2", "since", cursor), nil, &p)
		for _, m := range p.Messages {
			got = append(got, m.Data)
		}
		cursor = p.Cursor
		if !p.More {
			break
		}
	}
	if strings.Join(got, ",") != "m0,m1,m2,m3,m4" {
		t.Fatalf("paged history = %v", got)
	}
}

func TestBadInputAnswersJSONErrors(t *testing.T) {
	e := startEdge(t, transports.Config{MaxPayload: 1024})
	cases := []struct {
		name, method, url, body string
		header                  http.Header
		status                  int
		code                    string
	}{
		{"invalid channel", "GET", e.url("/v1/subscribe", "channel", "bad name"), "", nil, 400, "bad_channel"},
		{"channel too long", "GET", e.url("/v1/subscribe", "channel", strings.Repeat("a", 201)), "", nil, 400, "bad_channel"},
		{"no channel", "GET", e.url("/v1/subscribe"), "", nil, 400, "bad_channel"},
		{"same channel twice", "GET", e.url("/v1/subscribe", "channel", "a", "channel", "a"), "", nil, 400, "bad_channel"},
		{"garbage cursor", "GET", e.url("/v1/subscribe", "channel", "a", "since", "garbage"), "", nil, 400, "bad_cursor"},
		{"garbage Last-Event-ID", "GET", e.url("/v1/subscribe", "channel", "a"), "", http.Header{"Last-Event-Id": {"x-y"}, "Accept": {"text/event-stream"}}, 400, "bad_cursor"},
		{"bare id for two channels", "GET", e.url("/v1/subscribe", "channel", "a", "channel", "b", "since", "1-0"), "", nil, 400, "bad_cursor"},
		{"bad composite cursor", "GET", e.url("/v1/subscribe", "channel", "a", "channel", "b", "since", "m.!!!"), "", nil, 400, "bad_cursor"},
		{"unknown transport", "GET", e.url("/v1/subscribe", "channel", "a", "transport", "carrier-pigeon"), "", nil, 400, "bad_request"},
		{"ws forced without upgrade", "GET", e.url("/v1/subscribe", "channel", "a", "transport", "ws"), "", nil, 400, "bad_request"},
		{"bad timeout", "GET", e.url("/v1/subscribe", "channel", "a", "timeout", "soon"), "", nil, 400, "bad_request"},
		{"too many channels", "GET", e.url("/v1/subscribe", manyChannels(65)...), "", nil, 400, "too_many_channels"},
		{"payload too large", "POST", e.url("/v1/publish", "channel", "a"), strings.Repeat("x", 1025), nil, 413, "payload_too_large"},
		{"publish bad channel", "POST", e.url("/v1/publish", "channel", "a b"), "x", nil, 400, "bad_channel"},
		{"publish reserved event", "POST", e.url("/v1/publish", "channel", "a", "event", "gap"), "x", nil, 400, "bad_event"},
		{"publish event with newline", "POST", e.url("/v1/publish", "channel", "a", "event", "x\ndata: y"), "x", nil, 400, "bad_event"},
		{"publish with GET", "GET", e.url("/v1/publish", "channel", "a"), "", nil, 405, "method_not_allowed"},
		{"history bad cursor", "GET", e.url("/v1/history", "channel", "a", "since", "1-2-3"), "", nil, 400, "bad_cursor"},
		{"unknown path", "GET", e.url("/v2/nothing"), "", nil, 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var ans errorAnswer
			decodeJSON(t, resp, &ans)
			if resp.StatusCode != tc.status || ans.Error.Code != tc.code || ans.Error.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, ans, tc.status, tc.code)
			}
		})
	}
	// The edge still serves after all that.
	if id := e.publish("a", "still here"); id == "" {
		t.Fatal("no id")
	}
}

func manyChannels(n int) []string {
	var q []string
	for i := range n {
		q = append(q, "channel", fmt.Sprintf("c%d", i))
	}
	return q
}

func TestPublishKey(t *testing.T) {
	e := startEdge(t, transports.Config{PublishKeys: []string{"other", "s3cret"}})
	for _, tc := range []struct {
		name, auth string
		status     int
	}{
		{"missing", "", 401},
		{"wrong", "Bearer nope", 401},
		{"right", "Bearer s3cret", 200},
		{"another key", "Bearer other", 200},
		{"scheme in lower case", "bearer s3cret", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.url("/v1/publish", "channel", "a"), strings.NewReader("x"))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			drain(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}

func TestNegotiation(t *testing.T) {
	e := startEdge(t, transports.Config{})
	t.Run("accept event-stream gets SSE", func(t *testing.T) {
		c := openSSE(t, e.url("/v1/subscribe", "channel", "n"), nil)
		if ct := c.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("Content-Type %q", ct)
		}
		for h, want := range map[string]string{"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"} {
			if got := c.resp.Header.Get(h); got != want {
				t.Fatalf("%s = %q, want %q", h, got, want)
			}
		}
	})
	t.Run("transport=sse without Accept gets SSE", func(t *testing.T) {
		resp, err := http.Get(e.url("/v1/subscribe", "channel", "n", "transport", "sse"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("Content-Type %q", ct)
		}
	})
	t.Run("plain GET gets long-poll", func(t *testing.T) {
		var a pollAnswer
		if st := getJSON(t, e.url("/v1/subscribe", "channel", "n", "timeout", "0"), nil, &a); st != 200 || a.Cursor == "" {
			t.Fatalf("status %d answer %+v", st, a)
		}
	})
	t.Run("transport=poll beats Accept", func(t *testing.T) {
		var a pollAnswer
		h := http.Header{"Accept": {"text/event-stream"}}
		if st := getJSON(t, e.url("/v1/subscribe", "channel", "n", "timeout", "0", "transport", "poll"), h, &a); st != 200 {
			t.Fatalf("status %d", st)
		}
	})
	t.Run("upgrade gets WebSocket", func(t *testing.T) {
		c := dialWS(t, e.wsURL("channel", "n"))
		c.readControl("subscribed")
	})
}

func TestHealth(t *testing.T) {
	e := startEdge(t, transports.Config{})
	for _, path := range []string{"/healthz", "/readyz"} {
		var body map[string]any
		if st := getJSON(t, e.url(path), nil, &body); st != 200 {
			t.Fatalf("%s: %d %v", path, st, body)
		}
	}
}

func TestCORS(t *testing.T) {
	e := startEdge(t, transports.Config{CORSOrigin: "https://app.example"})
	for _, tc := range []struct{ origin, want string }{
		{"https://app.example", "https://app.example"},
		{"https://evil.example", ""},
	} {
		req, _ := http.NewRequest("OPTIONS", e.url("/v1/publish", "channel", "a"), nil)
		req.Header.Set("Origin", tc.origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.want {
			t.Errorf("origin %s: allow-origin %q, want %q", tc.origin, got, tc.want)
		}
	}
}

// The CORS allow-list covers the streams a page reads from another origin:
// SSE (whose head goes out on a hijacked connection) and a long-poll that
// waited (parked, answered by hand), not only plain handlers.
func TestCORSForSSEAndLongPoll(t *testing.T) {
	e := startEdge(t, transports.Config{CORSOrigin: "https://app.example, https://other.example"})
	for _, tc := range []struct{ origin, want string }{
		{"https://other.example", "https://other.example"},
		{"https://evil.example", ""},
	} {
		for _, query := range [][]string{
			{"channel", "c", "transport", "sse"},
			{"channel", "c", "transport", "poll", "timeout", "50ms"},
		} {
			req, _ := http.NewRequest(http.MethodGet, e.url("/v1/subscribe", query...), nil)
			req.Header.Set("Origin", tc.origin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.want || resp.StatusCode != 200 {
				t.Errorf("%s from %s: %d, allow-origin %q, want %q", query[3], tc.origin, resp.StatusCode, got, tc.want)
			}
			if tc.want != "" && !strings.Contains(resp.Header.Get("Vary"), "Origin") {
				t.Errorf("%s: no Vary: Origin", query[3])
			}
		}
	}
}

// The default long-poll hold stays under the idle timeouts of common
// proxies and load balancers (60 s for nginx and AWS ALB, 30 s for some
// corporate proxies), and the SSE heartbeat keeps streams under them too.
func TestDefaultsFitProxyIdleTimeouts(t *testing.T) {
	cfg := transports.Config{}.WithDefaults()
	if cfg.PollTimeout >= 30*time.Second || cfg.Heartbeat >= 30*time.Second {
		t.Fatalf("poll hold %v, heartbeat %v: not under 30 s", cfg.PollTimeout, cfg.Heartbeat)
	}
}
