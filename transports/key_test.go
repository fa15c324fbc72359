package transports_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

// publishWithKey publishes data to channel with the conflation key key
// (none when "") and returns the status and the error code or the id.
func publishWithKey(t *testing.T, e *testEdge, channel, data, key string) (int, string) {
	t.Helper()
	resp, err := http.Post(e.url("/v1/publish", "channel", channel, "key", key), "text/plain", strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID    string
		Error struct{ Code string }
	}
	body, _ := io.ReadAll(resp.Body)
	json.Unmarshal(body, &out)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, out.Error.Code
	}
	return resp.StatusCode, out.ID
}

// A message's conflation key, given as key= of POST /v1/publish, "key" of
// the WebSocket publish op or of a batch message, travels with it to every
// transport's subscribers and into history, on every backend; a malformed
// key is refused.
func TestPublishConflationKey(t *testing.T) {
	for _, b := range contractBackends {
		t.Run(b.name, func(t *testing.T) {
			use := b.start(t)
			var broker edge.Broker = resume.NewMemory(resume.MemoryConfig{})
			if use != nil {
				cfg := resume.RedisConfig{}
				use(&cfg)
				r, err := resume.NewRedis(cfg, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				broker = r
			}
			e := startEdgeWith(t, transports.Config{ClientPublish: []string{"*"}}, broker)
			ws := dialWS(t, e.wsURL("channel", "dash"))
			ws.readControl("subscribed")
			sse := openSSE(t, e.url("/v1/subscribe", "channel", "dash", "channel", "other"), nil)
			sse.lastID()

			if status, _ := publishWithKey(t, e, "dash", "d-EURUSD", "EURUSD"); status != 200 {
				t.Fatalf("keyed publish: %d", status)
			}
			publishWithKey(t, e, "dash", "d-", "")
			pub := dialWS(t, e.wsURL())
			pub.send(map[string]any{"op": "publish", "channel": "dash", "data": "d-GBP/USD", "key": "GBP/USD", "ref": 1})
			if f := pub.readControl("published"); f.Error != nil {
				t.Fatalf("ws publish: %+v", f.Error)
			}
			if status, results, code := postBatch(t, e, nil, batchBody(t, []batchMsg{
				{Channel: "dash", Data: text("d-a"), Key: "a"},
				{Channel: "dash", Data: text("d-")},
			})); status != 200 || len(results) != 2 || results[0].Error != nil || results[1].Error != nil {
				t.Fatalf("batch: %d %+v %s", status, results, code)
			}
			want := []string{"EURUSD", "", "GBP/USD", "a", ""}
			check := func(what string, got []wireMessage) {
				t.Helper()
				if len(got) != len(want) {
					t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
				}
				for i, m := range got {
					if m.Key != want[i] || m.Data != "d-"+want[i] {
						t.Fatalf("%s: message %d %+v, want key %q", what, i, m, want[i])
					}
				}
			}
			check("ws", ws.readMessages(len(want)))
			var events []wireMessage
			for range want {
				var m wireMessage
				if err := json.Unmarshal([]byte(sse.next().Data), &m); err != nil {
					t.Fatal(err)
				}
				events = append(events, m)
			}
			check("sse", events)
			var poll pollAnswer
			getJSON(t, e.url("/v1/subscribe", "channel", "dash", "since", "0-0", "transport", "poll"), nil, &poll)
			check("poll", poll.Messages)
			var page struct{ Messages []wireMessage }
			getJSON(t, e.url("/v1/history", "channel", "dash"), nil, &page)
			check("history", page.Messages)

			for name, key := range map[string]string{"a space": "a b", "too long": strings.Repeat("k", edge.MaxKeyLen+1), "not ASCII": "é"} {
				if status, code := publishWithKey(t, e, "dash", "x", key); status != 400 || code != "bad_request" {
					t.Fatalf("%s: %d %s, want 400 bad_request", name, status, code)
				}
				pub.send(map[string]any{"op": "publish", "channel": "dash", "data": "x", "key": key, "ref": 2})
				pub.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				if f := pub.read(); f.Error == nil || f.Error.Code != "bad_request" {
					t.Fatalf("%s over the ws op: %+v, want bad_request", name, f)
				}
				if status, results, _ := postBatch(t, e, nil, batchBody(t, []batchMsg{{Channel: "dash", Data: text("x"), Key: key}})); status == 200 && (len(results) != 1 || results[0].Error == nil || results[0].Error.Code != "bad_request") {
					t.Fatalf("%s in a batch: %+v, want bad_request", name, results)
				}
			}
			var after struct{ Messages []wireMessage }
			getJSON(t, e.url("/v1/history", "channel", "dash"), nil, &after)
			if len(after.Messages) != len(want) {
				t.Fatalf("refused publishes stored messages: %d in history", len(after.Messages))
			}
		})
	}
}
