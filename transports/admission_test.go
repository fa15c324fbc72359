package transports_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/transports"
)

// A node admits ResumeRate resuming subscribes a second, on every
// transport: the rest get 429 rate_limited with a Retry-After, while
// fresh subscribes, the next polls of a kept connection and sessions
// already connected go on.
func TestResumeRate(t *testing.T) {
	const rate, tries = 2, 10
	for _, tt := range []struct {
		name string
		// resume opens a subscribe with cursor on a new connection and
		// returns the answer's status, its Retry-After and its body (the
		// error code); fresh (cursor "") too.
		resume func(t *testing.T, e *testEdge, cursor string) (status int, retryAfter, body string)
	}{
		{"ws", resumeWS},
		{"sse", resumeSSE},
		{"poll", resumePoll},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := startEdge(t, transports.Config{ResumeRate: rate})
			connected := openSSE(t, e.url("/v1/subscribe", "channel", "a"), nil)
			connected.lastID() // joined
			cursor := e.publish("a", "one")
			if got := connected.next(); got.Data != "one" {
				t.Fatalf("connected subscriber got %+v", got)
			}
			start := time.Now()
			admitted, refused := 0, 0
			for range tries {
				status, retryAfter, body := tt.resume(t, e, cursor)
				switch status {
				case http.StatusOK, http.StatusSwitchingProtocols:
					admitted++
				case http.StatusTooManyRequests:
					refused++
					secs, err := strconv.Atoi(retryAfter)
					if err != nil || secs < 1 || secs > tries/rate+1+2 || !strings.Contains(body, `"rate_limited"`) {
						t.Errorf("refusal with Retry-After %q, body %s", retryAfter, body)
					}
				default:
					t.Fatalf("resume answered %d: %s", status, body)
				}
			}
			if most := rate + int(time.Since(start).Seconds()*rate) + 1; admitted > most || refused == 0 {
				t.Errorf("%d of %d resumes admitted, %d refused; want at most %d admitted and some refused", admitted, tries, refused, most)
			}
			if status, _, body := tt.resume(t, e, ""); status == http.StatusTooManyRequests {
				t.Errorf("a fresh subscribe was refused: %s", body)
			}
			e.publish("a", "two")
			if got := connected.next(); got.Data != "two" {
				t.Errorf("connected subscriber got %+v after the refusals", got)
			}
		})
	}
}

// The polls of a client that keeps its connection are not new: only the
// first subscribe on a connection counts against ResumeRate.
func TestResumeRateKeptPolls(t *testing.T) {
	e := startEdge(t, transports.Config{ResumeRate: 1})
	cursor := e.publish("a", "one")
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	for i := range 5 {
		resp, err := client.Get(e.url("/v1/subscribe", "channel", "a", "transport", "poll", "timeout", "0", "since", cursor))
		if err != nil {
			t.Fatal(err)
		}
		drain(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("poll %d on a kept connection: %d", i, resp.StatusCode)
		}
	}
}

// resumeWS dials a WebSocket with since=cursor.
func resumeWS(t *testing.T, e *testEdge, cursor string) (int, string, string) {
	q := []string{"channel", "a"}
	if cursor != "" {
		q = append(q, "since", cursor)
	}
	conn, resp, err := websocket.DefaultDialer.Dial(e.wsURL(q...), nil)
	if err == nil {
		conn.Close()
		return http.StatusSwitchingProtocols, "", ""
	}
	if resp == nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if resp.Body != nil {
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), b.String()
}

// resumeSSE opens an SSE stream with Last-Event-ID cursor and closes it.
func resumeSSE(t *testing.T, e *testEdge, cursor string) (int, string, string) {
	return getClosed(t, e.url("/v1/subscribe", "channel", "a"), cursor, "text/event-stream")
}

// resumePoll polls with since=cursor and timeout=0 on a new connection.
func resumePoll(t *testing.T, e *testEdge, cursor string) (int, string, string) {
	q := []string{"channel", "a", "transport", "poll", "timeout", "0"}
	if cursor != "" {
		q = append(q, "since", cursor)
	}
	return getClosed(t, e.url("/v1/subscribe", q...), "", "")
}

// getClosed sends GET u on a connection of its own (with Last-Event-ID
// lastID and Accept unless empty) and returns the status, Retry-After and
// the start of the body.
func getClosed(t *testing.T, u, lastID, accept string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, "", "" // a stream: close it
	}
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(buf[:n])
}
