package transports_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
	"github.com/edgeworks/edge/transports"
)

// keyedAnswer is the answer to a publish with an idempotency key.
type keyedAnswer struct {
	status   int
	id       string
	code     string
	replayed bool
}

// publishKeyed publishes data to channel over HTTP with the given
// Idempotency-Key headers.
func publishKeyed(t *testing.T, e *testEdge, channel, data string, keys ...string) keyedAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url("/v1/publish", "channel", channel), strings.NewReader(data))
	for _, k := range keys {
		req.Header.Add("Idempotency-Key", k)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		ID    string
		Error struct{ Code string }
	}
	json.Unmarshal(body, &out)
	return keyedAnswer{resp.StatusCode, out.ID, out.Error.Code, resp.Header.Get("Idempotent-Replayed") == "true"}
}

// publishKeyedWS publishes over a WebSocket publish op with key.
func publishKeyedWS(t *testing.T, c *wsClient, channel, data, key string) keyedAnswer {
	t.Helper()
	c.send(map[string]any{"op": "publish", "channel": channel, "data": data, "idempotency_key": key, "ref": 1})
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := c.conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Type     string
		ID       string
		Replayed bool
		Error    *struct{ Code string }
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("answer %s: %v", b, err)
	}
	if f.Error != nil {
		return keyedAnswer{status: 400, code: f.Error.Code}
	}
	return keyedAnswer{status: 200, id: f.ID, replayed: f.Replayed}
}

// A publish with an Idempotency-Key, repeated, returns the first id and
// stores and relays nothing more, on every backend, over HTTP and the
// WebSocket publish op alike, and on another edge of the same fleet; the
// key names one message; bad keys are refused.
func TestIdempotentPublish(t *testing.T) {
	for _, b := range contractBackends {
		t.Run(b.name, func(t *testing.T) {
			use := b.start(t)
			newEdge := func() *testEdge {
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
				return startEdgeWith(t, transports.Config{ClientPublish: []string{"*"}}, broker)
			}
			e := newEdge()
			sub := openSSE(t, e.url("/v1/subscribe", "channel", "once"), nil)
			sub.lastID()

			first := publishKeyed(t, e, "once", "hello", "order-42")
			if first.status != 200 || first.replayed {
				t.Fatalf("first publish: %+v", first)
			}
			again := publishKeyed(t, e, "once", "hello", "order-42")
			if again.status != 200 || again.id != first.id || !again.replayed {
				t.Fatalf("repeat: %+v, want the first id %s, replayed", again, first.id)
			}
			ws := dialWS(t, e.wsURL())
			if a := publishKeyedWS(t, ws, "once", "hello", "order-42"); a.id != first.id || !a.replayed {
				t.Fatalf("repeat over a WebSocket op: %+v, want %s replayed", a, first.id)
			}
			if a := publishKeyed(t, e, "once", "another", "order-42"); a.status != 400 || a.code != "bad_request" {
				t.Fatalf("another message under the key: %+v, want 400 bad_request", a)
			}
			for name, keys := range map[string][]string{"a space": {"order 42"}, "too long": {strings.Repeat("k", 129)}, "two keys": {"a", "b"}} {
				if a := publishKeyed(t, e, "once", "hello", keys...); a.status != 400 || a.code != "bad_request" {
					t.Fatalf("%s: %+v, want 400 bad_request", name, a)
				}
			}
			if use != nil {
				other := newEdge()
				if a := publishKeyed(t, other, "once", "hello", "order-42"); a.id != first.id || !a.replayed {
					t.Fatalf("repeat on another edge: %+v, want %s replayed", a, first.id)
				}
			}
			ws2 := publishKeyedWS(t, ws, "once", "second", "order-43")
			if ws2.status != 200 || ws2.replayed || ws2.id == first.id {
				t.Fatalf("a new key over a WebSocket op: %+v", ws2)
			}
			// The subscriber got each message once, in order: the repeats
			// relayed nothing between them.
			for _, want := range []struct{ id, data string }{{first.id, "hello"}, {ws2.id, "second"}} {
				if ev := sub.next(); ev.ID != want.id || ev.Data != want.data {
					t.Fatalf("delivered %s %q, want %s %q", ev.ID, ev.Data, want.id, want.data)
				}
			}
			if ids := historyIDs(t, e, "once"); len(ids) != 2 {
				t.Fatalf("history holds %d messages, want 2: %v", len(ids), ids)
			}
		})
	}
}

// Publishers that retry every failed publish with its key, switching
// edge on each retry, get every message stored exactly once while Redis
// is killed under them and restarted (persisted with appendfsync always,
// so a publish whose answer was lost in the kill is in the stream): the
// history and a subscriber on one edge hold each message once, in each
// publisher's order. The kill comes while they publish; Redis comes back
// once a publish has failed.
func TestIdempotentRetriesAcrossRedisKill(t *testing.T) {
	redis := redistest.Start(t)
	newEdge := func() *testEdge {
		r, err := resume.NewRedis(resume.RedisConfig{URLs: []string{redis.URL()}}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return startEdgeWith(t, transports.Config{}, r)
	}
	edges := []*testEdge{newEdge(), newEdge()}
	sub := openSSE(t, edges[1].url("/v1/subscribe", "channel", "retried"), nil)
	sub.lastID()

	const publishers, each, killAt = 4, 50, 60
	client := &http.Client{Timeout: 5 * time.Second}
	var acked, failed atomic.Int64
	halfway, failing := make(chan struct{}), make(chan struct{})
	var once1, once2 sync.Once
	errs := make(chan error, publishers)
	for p := range publishers {
		go func() {
			retry := time.NewTicker(20 * time.Millisecond) // a publisher's backoff
			defer retry.Stop()
			node := p % 2
			for i := range each {
				for attempt := 0; ; attempt++ {
					if attempt == 500 {
						errs <- fmt.Errorf("publisher %d, message %d: no success in %d attempts", p, i, attempt)
						return
					}
					req, _ := http.NewRequest(http.MethodPost, edges[node].url("/v1/publish", "channel", "retried"), strings.NewReader(fmt.Sprintf("%d-%d", p, i)))
					req.Header.Set("Idempotency-Key", fmt.Sprintf("msg-%d-%d", p, i))
					resp, err := client.Do(req)
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							break
						}
					}
					failed.Add(1)
					once2.Do(func() { close(failing) })
					node = 1 - node
					<-retry.C
				}
				if acked.Add(1) == killAt {
					once1.Do(func() { close(halfway) })
				}
			}
			errs <- nil
		}()
	}
	<-halfway
	redis.Kill(t)
	<-failing
	redis.Restart(t)
	for range publishers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d publishes failed and were retried", failed.Load())

	var page struct{ Messages []wireMessage }
	getJSON(t, edges[0].url("/v1/history", "channel", "retried", "limit", "1000"), nil, &page)
	checkOnceEach := func(what string, data []string) {
		t.Helper()
		next := make([]int, publishers)
		for _, d := range data {
			var p, i int
			if _, err := fmt.Sscanf(d, "%d-%d", &p, &i); err != nil || p < 0 || p >= publishers || i != next[p] {
				t.Fatalf("%s: %q out of order or repeated (%d messages)", what, d, len(data))
			}
			next[p]++
		}
		if len(data) != publishers*each {
			t.Fatalf("%s: %d messages, want %d", what, len(data), publishers*each)
		}
	}
	var stored []string
	for _, m := range page.Messages {
		stored = append(stored, m.Data)
	}
	checkOnceEach("history", stored)
	var delivered []string
	for range publishers * each {
		delivered = append(delivered, sub.next().Data)
	}
	checkOnceEach("subscriber", delivered)
}
