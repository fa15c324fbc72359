package transports_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/transports"
)

// A client negotiates its idle wake-ups per connection: heartbeat= sets
// the interval of SSE comments and WebSocket pings and timeout= the hold
// of a long-poll, within the edge's bounds; without them the edge's
// defaults hold, and a value out of bounds is refused, never clamped.
// The table measures the time between two wake-ups on the wire.
func TestClientNegotiatesIdleWakeups(t *testing.T) {
	cfg := transports.Config{
		Heartbeat: time.Second, HeartbeatMin: 100 * time.Millisecond, HeartbeatMax: 3 * time.Second,
		PollTimeout: time.Second, PollTimeoutMax: 3 * time.Second,
	}
	e := startEdge(t, cfg)
	for _, tc := range []struct {
		name, transport string
		query           []string
		want            time.Duration // 0: refused with 400
	}{
		{"sse default", "sse", nil, time.Second},
		{"sse short", "sse", []string{"heartbeat", "150ms"}, 150 * time.Millisecond},
		{"sse long", "sse", []string{"heartbeat", "2s"}, 2 * time.Second},
		{"sse under the minimum", "sse", []string{"heartbeat", "50ms"}, 0},
		{"sse over the maximum", "sse", []string{"heartbeat", "4s"}, 0},
		{"ws default", "ws", nil, time.Second},
		{"ws short", "ws", []string{"heartbeat", "150ms"}, 150 * time.Millisecond},
		{"ws long", "ws", []string{"heartbeat", "2s"}, 2 * time.Second},
		{"ws over the maximum", "ws", []string{"heartbeat", "4s"}, 0},
		{"poll default", "poll", nil, time.Second},
		{"poll short", "poll", []string{"timeout", "150ms"}, 150 * time.Millisecond},
		{"poll long", "poll", []string{"timeout", "2s"}, 2 * time.Second},
		{"poll over the maximum", "poll", []string{"timeout", "4s"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			query := append([]string{"channel", "idle-" + strings.ReplaceAll(tc.name, " ", "-"), "transport", tc.transport}, tc.query...)
			var got time.Duration
			var status int
			switch tc.transport {
			case "sse":
				got, status = sseHeartbeat(t, e.url("/v1/subscribe", query...))
			case "ws":
				got, status = wsHeartbeat(t, e.wsURL(query...))
			default:
				got, status = pollHold(t, e.url("/v1/subscribe", query...))
			}
			if tc.want == 0 {
				if status != http.StatusBadRequest {
					t.Fatalf("status %d, want 400", status)
				}
				return
			}
			// Timers fire late on a busy machine, never early.
			if got < tc.want*8/10 || got > tc.want*2+300*time.Millisecond {
				t.Fatalf("%v between wake-ups, want %v", got, tc.want)
			}
		})
	}
}

// sseHeartbeat returns the time between the first two heartbeat comments
// of an SSE stream, or the status of a refused one.
func sseHeartbeat(t *testing.T, u string) (time.Duration, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, resp.StatusCode
	}
	var beats []time.Time
	sc := bufio.NewScanner(resp.Body)
	for len(beats) < 2 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), ":") {
			beats = append(beats, time.Now())
		}
	}
	if len(beats) < 2 {
		t.Fatalf("the stream ended after %d heartbeats: %v", len(beats), sc.Err())
	}
	return beats[1].Sub(beats[0]), resp.StatusCode
}

// wsHeartbeat returns the time between the first two pings of a
// WebSocket connection, or the status of a refused upgrade.
func wsHeartbeat(t *testing.T, u string) (time.Duration, int) {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		if resp != nil {
			return 0, resp.StatusCode
		}
		t.Fatal(err)
	}
	defer c.Close()
	pings := make(chan time.Time, 2)
	c.SetPingHandler(func(string) error {
		select {
		case pings <- time.Now():
		default:
		}
		return nil
	})
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	var beats []time.Time
	for len(beats) < 2 {
		select {
		case at := <-pings:
			beats = append(beats, at)
		case <-time.After(15 * time.Second):
			t.Fatalf("%d pings in 15 s", len(beats))
		}
	}
	return beats[1].Sub(beats[0]), http.StatusSwitchingProtocols
}

// pollHold returns how long a long-poll without messages was held, or
// the status of a refused one.
func pollHold(t *testing.T, u string) (time.Duration, int) {
	t.Helper()
	start := time.Now() // without since= the poll starts at the channel's position and holds
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Messages []json.RawMessage }
	if resp.StatusCode != http.StatusOK {
		return 0, resp.StatusCode
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Messages) != 0 {
		t.Fatalf("an idle poll answered %d messages (%v), want none", len(body.Messages), err)
	}
	return time.Since(start), resp.StatusCode
}
