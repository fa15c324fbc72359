package resume_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
)

// onceBackend is a Redis (single or cluster) with two nodes on it, and a
// way to send a command to the server that holds a key.
type onceBackend struct {
	a, b *redisNode
	// do sends a command to the server holding key.
	do func(t *testing.T, key string, args ...string) (string, error)
	// node starts one more node with cfg.
	node func(t *testing.T, cfg resume.RedisConfig) *redisNode
}

// onceBackends are the Redis deployments PublishOnce is tested on.
var onceBackends = []struct {
	name  string
	start func(t *testing.T) onceBackend
}{
	{"single", func(t *testing.T) onceBackend {
		srv := redistest.Start(t)
		node := func(t *testing.T, cfg resume.RedisConfig) *redisNode { return startRedisNode(t, srv, cfg) }
		return onceBackend{
			a: node(t, resume.RedisConfig{}), b: node(t, resume.RedisConfig{}),
			do:   func(t *testing.T, _ string, args ...string) (string, error) { return srv.Do(t, args...) },
			node: node,
		}
	}},
	{"cluster", func(t *testing.T) onceBackend {
		c := redistest.StartCluster(t, 3)
		node := func(t *testing.T, cfg resume.RedisConfig) *redisNode {
			t.Helper()
			cfg.URLs = strings.Split(c.URLs(), ",")
			r, err := resume.NewRedis(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})))
			if err != nil {
				t.Fatal(err)
			}
			return runRedisNode(t, r)
		}
		return onceBackend{
			a: node(t, resume.RedisConfig{}), b: node(t, resume.RedisConfig{}),
			do: func(t *testing.T, key string, args ...string) (string, error) {
				return c.MasterOf(t, key).Do(t, args...)
			},
			node: node,
		}
	}},
}

// A publish repeated with its idempotency key stores and relays nothing
// and answers the first one's id, on the node that stored it and on
// another; the key names one message of one channel.
func TestRedisPublishOnce(t *testing.T) {
	for _, be := range onceBackends {
		t.Run(be.name, func(t *testing.T) {
			b := be.start(t)
			ctx := context.Background()
			for _, ch := range []string{"once-c", "once-d"} {
				if err := b.b.Watch(ctx, ch); err != nil {
					t.Fatal(err)
				}
			}
			nodes := map[string]*redisNode{"a": b.a, "b": b.b}
			steps := []struct {
				name, node, channel, event, data, key string
				replayOf                              string // the step whose id a replay answers; "" for a new message
				wantErr                               error
			}{
				{name: "first", node: "a", channel: "once-c", data: "one", key: "k1"},
				{name: "repeat", node: "a", channel: "once-c", data: "one", key: "k1", replayOf: "first"},
				{name: "repeat on another node", node: "b", channel: "once-c", data: "one", key: "k1", replayOf: "first"},
				{name: "same key, other data", node: "a", channel: "once-c", data: "two", key: "k1", wantErr: edge.ErrBadRequest},
				{name: "same key, other event", node: "b", channel: "once-c", event: "price", data: "one", key: "k1", wantErr: edge.ErrBadRequest},
				{name: "same key, other channel", node: "a", channel: "once-d", data: "one", key: "k1"},
				{name: "other channel repeated", node: "b", channel: "once-d", data: "one", key: "k1", replayOf: "same key, other channel"},
				{name: "other key", node: "b", channel: "once-c", event: "price", data: "one", key: "k2"},
				{name: "invalid key", node: "a", channel: "once-c", data: "one", key: "a b", wantErr: edge.ErrBadRequest},
				{name: "first repeated last", node: "b", channel: "once-c", data: "one", key: "k1", replayOf: "first"},
			}
			ids := map[string]edge.ID{}
			stored := map[string][]edge.ID{}
			for _, s := range steps {
				id, replayed, err := nodes[s.node].PublishOnce(ctx, s.channel, s.event, []byte(s.data), s.key)
				if s.wantErr != nil {
					if !errors.Is(err, s.wantErr) {
						t.Fatalf("%s: error %v, want %v", s.name, err, s.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				if want := s.replayOf != ""; replayed != want || (want && id != ids[s.replayOf]) {
					t.Fatalf("%s: id %v, replayed %v; want replayed %v of %v", s.name, id, replayed, want, ids[s.replayOf])
				}
				ids[s.name] = id
				if !replayed {
					stored[s.channel] = append(stored[s.channel], id)
				}
			}
			// A plain publish after them all: once it is relayed, so
			// would be any message relayed twice.
			for _, ch := range []string{"once-c", "once-d"} {
				last := mustPublish(t, b.a, ch, "last")
				want := append(stored[ch], last)
				b.b.waitUntil(t, ch, last)
				if got := relayedIDs(b.b.waitFor(t, ch, 0)); !slices.Equal(got, want) {
					t.Errorf("%s: relayed %v, want %v", ch, got, want)
				}
				page, err := b.a.History(ctx, ch, edge.ID{}, 100)
				if err != nil {
					t.Fatal(err)
				}
				if got := relayedIDs(page.Messages); !slices.Equal(got, want) {
					t.Errorf("%s: history holds %v, want %v", ch, got, want)
				}
			}
		})
	}
}

// A key is remembered for the window: its Redis key expires with it, and
// a publish after it is a new message.
func TestRedisPublishOnceWindow(t *testing.T) {
	for _, be := range onceBackends {
		t.Run(be.name, func(t *testing.T) {
			b := be.start(t)
			const window = 200 * time.Millisecond
			n := b.node(t, resume.RedisConfig{IdempotencyWindow: window})
			ctx := context.Background()
			first, replayed, err := n.PublishOnce(ctx, "win", "", []byte("x"), "k")
			if err != nil || replayed {
				t.Fatalf("first publish: %v, replayed %v", err, replayed)
			}
			const onceKey = "edge:{win}:once:k"
			ttl, err := b.do(t, onceKey, "PTTL", onceKey)
			if err != nil {
				t.Fatal(err)
			}
			if ms := atoiT(t, ttl); ms <= 0 || ms > window.Milliseconds() {
				t.Fatalf("PTTL %s = %d ms, want 1 to %d", onceKey, ms, window.Milliseconds())
			}
			deadline := time.Now().Add(10 * time.Second)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				id, replayed, err := n.PublishOnce(ctx, "win", "", []byte("x"), "k")
				if err != nil {
					t.Fatal(err)
				}
				if !replayed {
					if !first.Less(id) {
						t.Fatalf("after the window: id %v, want one after %v", id, first)
					}
					break
				}
				if id != first {
					t.Fatalf("within the window: id %v, want %v", id, first)
				}
				if time.Now().After(deadline) {
					t.Fatalf("the key is still remembered 10s after a window of %v", window)
				}
				<-tick.C
			}
			page, err := n.History(ctx, "win", edge.ID{}, 100)
			if err != nil || len(page.Messages) != 2 {
				t.Fatalf("history: %d messages, %v; want 2", len(page.Messages), err)
			}
		})
	}
}

// The function validates the key itself, for backends that call it
// directly: 1 to 128 bytes of visible ASCII.
func TestRedisPublishOnceFunctionRefusesBadKeys(t *testing.T) {
	for _, be := range onceBackends {
		t.Run(be.name, func(t *testing.T) {
			b := be.start(t)
			for _, tc := range []struct {
				name, key string
				ok        bool
			}{
				{"empty", "", false},
				{"space", "a b", false},
				{"tab", "a\tb", false},
				{"DEL", "a\x7f", false},
				{"non-ASCII", "clé", false},
				{"129 bytes", strings.Repeat("k", edge.MaxIdempotencyKeyLen+1), false},
				{"128 bytes", strings.Repeat("k", edge.MaxIdempotencyKeyLen), true},
				{"punctuation", "!~{}:\"'", true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					if (edge.ValidateIdempotencyKey(tc.key) == nil) != tc.ok {
						t.Fatalf("edge.ValidateIdempotencyKey(%q) disagrees with the test", tc.key)
					}
					_, err := b.do(t, "edge:{bad}", "FCALL", "edge_publish", "1", "edge:{bad}", "", "x", "idempotency-key", tc.key)
					if (err == nil) != tc.ok {
						t.Fatalf("FCALL with key %q: error %v, want an error: %v", tc.key, err, !tc.ok)
					}
					if err != nil && !strings.Contains(err.Error(), "idempotency-key must be 1-128 bytes") {
						t.Fatalf("FCALL with key %q: error %v", tc.key, err)
					}
				})
			}
		})
	}
}

// The documented FCALL: with idempotency-key it answers {id, replayed};
// without, the id alone, as before.
func TestRedisFunctionPublishOnce(t *testing.T) {
	srv := redistest.Start(t)
	startRedisNode(t, srv, resume.RedisConfig{}) // loads the function
	var first string
	for _, tc := range []struct {
		name    string
		args    []string
		check   func(t *testing.T, reply string)
		wantErr string
	}{
		{"keyed", []string{"", "payload", "idempotency-key", "k1"}, func(t *testing.T, reply string) {
			id, replayed, ok := strings.Cut(reply, "\n")
			if !ok || replayed != "0" {
				t.Fatalf("answered %q, want id\\n0", reply)
			}
			first = id
		}, ""},
		{"keyed again", []string{"", "payload", "idempotency-key", "k1"}, func(t *testing.T, reply string) {
			if want := first + "\n1"; reply != want {
				t.Fatalf("answered %q, want %q", reply, want)
			}
		}, ""},
		{"keyed again, options in another order", []string{"", "payload", "idempotency-ttl-ms", "60000", "max-payload", "100", "idempotency-key", "k1"}, func(t *testing.T, reply string) {
			if want := first + "\n1"; reply != want {
				t.Fatalf("answered %q, want %q", reply, want)
			}
		}, ""},
		{"without options", []string{"", "payload"}, func(t *testing.T, reply string) {
			if _, err := edge.ParseID(reply); err != nil {
				t.Fatalf("answered %q, want an id: %v", reply, err)
			}
		}, ""},
		{"the nodes' options", []string{"", "payload", "history-size", "1000", "history-ttl-ms", "3600000", "max-payload", "65536"}, func(t *testing.T, reply string) {
			if _, err := edge.ParseID(reply); err != nil {
				t.Fatalf("answered %q, want an id: %v", reply, err)
			}
		}, ""},
		{"same key, other payload", []string{"", "other", "idempotency-key", "k1"}, nil, "ERR edge: idempotency key reused for another message"},
		{"key given twice", []string{"", "payload", "idempotency-key", "k1", "idempotency-key", "k2"}, nil, "given twice"},
		{"window without a key", []string{"", "payload", "idempotency-ttl-ms", "1000"}, nil, "needs idempotency-key"},
		{"window of zero", []string{"", "payload", "idempotency-key", "k3", "idempotency-ttl-ms", "0"}, nil, "at least 1"},
		{"unknown option", []string{"", "payload", "idempotency-key", "k3", "exactly-once", "1"}, nil, "ERR edge: usage: unknown option"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply, err := srv.Do(t, append([]string{"FCALL", "edge_publish", "1", "edge:{c}"}, tc.args...)...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("answered %q, %v; want an error with %q", reply, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, reply)
		})
	}
	// A batch has no key: the option is unknown to edge_publish_batch.
	if _, err := srv.Do(t, "FCALL", "edge_publish_batch", "1", "edge:{c}", "1", "", "x", "idempotency-key", "k"); err == nil || !strings.Contains(err.Error(), "usage: unknown option") {
		t.Fatalf("edge_publish_batch with idempotency-key: %v, want a usage error", err)
	}
	if n, _ := srv.Do(t, "XLEN", "edge:{c}"); n != "3" {
		t.Fatalf("the stream holds %s messages, want 3 (the keyed one once)", n)
	}
}

// A key survives Redis's crash (AOF, appendfsync always): a publisher
// that retries after the restart gets the first publish's id, and the
// stream holds the message once.
func TestRedisPublishOnceAcrossKill(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	n := startRedisNode(t, srv, resume.RedisConfig{})
	ctx := context.Background()
	first, replayed, err := n.PublishOnce(ctx, "crash", "", []byte("x"), "K")
	if err != nil || replayed {
		t.Fatalf("first publish: %v, replayed %v", err, replayed)
	}
	srv.Kill(t)
	if _, _, err := n.PublishOnce(ctx, "crash", "", []byte("x"), "K"); !errors.Is(err, edge.ErrUnavailable) {
		t.Fatalf("publish while Redis is down: %v, want ErrUnavailable", err)
	}
	srv.Restart(t)
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		id, replayed, err := n.PublishOnce(ctx, "crash", "", []byte("x"), "K")
		if err == nil {
			if id != first || !replayed {
				t.Fatalf("after the restart: id %v, replayed %v; want %v, replayed", id, replayed, first)
			}
			break
		}
		if !errors.Is(err, edge.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("publish after the restart: %v", err)
		}
		<-tick.C
	}
	if xlen, _ := srv.Do(t, "XLEN", "edge:{crash}"); xlen != "1" {
		t.Fatalf("the stream holds %s messages, want 1", xlen)
	}
}

// A node of this release whose Redis holds the function of the release
// before idempotency (loaded by a node of that release during a rolling
// upgrade) loads its own when that one answers "usage" to the key, and
// publishes once; that release's calls keep working with this function.
func TestRedisPublishOnceOverOlderFunction(t *testing.T) {
	srv := redistest.Start(t)
	n := startRedisNode(t, srv, resume.RedisConfig{})
	older, err := os.ReadFile("testdata/edge-before-idempotency.lua")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do(t, "FUNCTION", "LOAD", "REPLACE", string(older)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do(t, "FCALL", "edge_publish", "1", "edge:{up}", "", "x", "idempotency-key", "K"); err == nil || !strings.Contains(err.Error(), "edge: usage") {
		t.Fatalf("the older function answered a key with %v, want a usage error", err)
	}
	ctx := context.Background()
	first, replayed, err := n.PublishOnce(ctx, "up", "", []byte("x"), "K")
	if err != nil || replayed {
		t.Fatalf("publish over the older function: %v, replayed %v", err, replayed)
	}
	if id, replayed, err := n.PublishOnce(ctx, "up", "", []byte("x"), "K"); err != nil || !replayed || id != first {
		t.Fatalf("repeat: %v, replayed %v, %v; want %v replayed", id, replayed, err, first)
	}
	// The older release's nodes call with the three options.
	if _, err := srv.Do(t, "FCALL", "edge_publish", "1", "edge:{up}", "", "y", "history-size", "1000", "history-ttl-ms", "3600000", "max-payload", "65536"); err != nil {
		t.Fatalf("the older release's call: %v", err)
	}
	if xlen, _ := srv.Do(t, "XLEN", "edge:{up}"); xlen != "2" {
		t.Fatalf("the stream holds %s messages, want 2", xlen)
	}
}

// Concurrent repeats of a key, pipelined with each other and with plain
// publishes, store the message once: one of them stores it, the others
// answer its id.
func TestRedisPublishOnceConcurrent(t *testing.T) {
	srv := redistest.Start(t)
	a := startRedisNode(t, srv, resume.RedisConfig{})
	b := startRedisNode(t, srv, resume.RedisConfig{})
	ctx := context.Background()
	const keys, repeats, plain = 10, 6, 20
	type result struct {
		key      string
		id       edge.ID
		replayed bool
		err      error
	}
	results := make(chan result, keys*repeats)
	var wg sync.WaitGroup
	for k := range keys {
		for r := range repeats {
			node := a
			if r%2 == 1 {
				node = b
			}
			key := fmt.Sprint("key-", k)
			wg.Go(func() {
				id, replayed, err := node.PublishOnce(ctx, "conc", "", []byte(key), key)
				results <- result{key, id, replayed, err}
			})
		}
	}
	for i := range plain {
		wg.Go(func() {
			if _, err := a.Publish(ctx, "conc", "", []byte(fmt.Sprint("plain-", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(results)
	ids, stored := map[string]edge.ID{}, map[string]int{}
	for res := range results {
		if res.err != nil {
			t.Fatalf("%s: %v", res.key, res.err)
		}
		if id, ok := ids[res.key]; ok && id != res.id {
			t.Fatalf("%s: ids %v and %v", res.key, id, res.id)
		}
		ids[res.key] = res.id
		if !res.replayed {
			stored[res.key]++
		}
	}
	for k := range keys {
		if key := fmt.Sprint("key-", k); stored[key] != 1 {
			t.Errorf("%s: stored by %d publishes, want 1", key, stored[key])
		}
	}
	if xlen, _ := srv.Do(t, "XLEN", "edge:{conc}"); xlen != fmt.Sprint(keys+plain) {
		t.Fatalf("the stream holds %s messages, want %d", xlen, keys+plain)
	}
}

func relayedIDs(ms []edge.Message) []edge.ID {
	ids := make([]edge.ID, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

func atoiT(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
