package resume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume/redistest"
)

// sendCounter is a go-redis hook that records, per Redis it is added to,
// the FCALLs of each send (one command or one pipeline).
type sendCounter struct {
	mu sync.Mutex
	// mu guards sends.
	sends map[string][]int // by address
}

func (c *sendCounter) hook(addr string) redis.Hook { return counterHook{c, addr} }

type counterHook struct {
	c    *sendCounter
	addr string
}

func (h counterHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h counterHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.record([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (h counterHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.record(cmds)
		return next(ctx, cmds)
	}
}

func (h counterHook) record(cmds []redis.Cmder) {
	n := 0
	for _, c := range cmds {
		if c.Name() == "fcall" {
			n++
		}
	}
	if n == 0 {
		return
	}
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	h.c.sends[h.addr] = append(h.c.sends[h.addr], n)
}

// A batch is one send to a single Redis, and on Redis Cluster one send to
// each master, whatever the number of its channels: every channel's FCALL
// goes to its master in one pipeline.
func TestPublishBatchRoundTrips(t *testing.T) {
	const channels = 24
	var batch []edge.Publication
	for i := range 3 * channels {
		batch = append(batch, edge.Publication{Channel: fmt.Sprintf("c%d", i%channels), Data: []byte("x")})
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) (*Redis, *sendCounter)
	}{
		{"redis", func(t *testing.T) (*Redis, *sendCounter) {
			srv := redistest.Start(t)
			r := startTestRedis(t, srv, RedisConfig{})
			c := &sendCounter{sends: map[string][]int{}}
			r.rdb.AddHook(c.hook(srv.Addr))
			return r, c
		}},
		{"redis-cluster", func(t *testing.T) (*Redis, *sendCounter) {
			cl := redistest.StartCluster(t, 3)
			r, err := NewRedis(RedisConfig{URLs: strings.Split(cl.URLs(), ",")}, log)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })
			c := &sendCounter{sends: map[string][]int{}}
			err = r.cluster.ForEachMaster(context.Background(), func(_ context.Context, node *redis.Client) error {
				node.AddHook(c.hook(node.Options().Addr))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return r, c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c := tc.start(t)
			for i, d := range r.PublishBatch(context.Background(), batch) {
				if d.Err != nil {
					t.Fatalf("message %d: %v", i, d.Err)
				}
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			total := 0
			for addr, sends := range c.sends {
				if len(sends) != 1 {
					t.Errorf("%s got %d sends %v, want one", addr, len(sends), sends)
				}
				for _, n := range sends {
					total += n
				}
			}
			if total != channels {
				t.Errorf("%d FCALLs for %d channels: %v", total, channels, c.sends)
			}
			if tc.name == "redis-cluster" && len(c.sends) < 2 {
				t.Errorf("the channels reached %d masters: %v", len(c.sends), c.sends)
			}
		})
	}
}

// The batch function checks its calls as edge_publish does and answers
// the ids in order; a call it refuses stores nothing.
func TestFunctionPublishBatch(t *testing.T) {
	srv := redistest.Start(t)
	startTestRedis(t, srv, RedisConfig{MaxPayload: 10})
	opts := []string{"history-size", "5", "history-ttl-ms", "60000", "max-payload", "10"}
	fcall := func(args ...string) []string {
		return append([]string{"FCALL", publishBatchFunction, "1"}, args...)
	}
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"one", fcall("edge:{a}", "1", "", "x"), true},
		{"three with options", append(fcall("edge:{a}", "3", "", "x", "e", "y", "", ""), opts...), true},
		{"no count", fcall("edge:{a}"), false},
		{"count zero", fcall("edge:{a}", "0"), false},
		{"count not a number", fcall("edge:{a}", "x", "", "x"), false},
		{"count over the pairs", fcall("edge:{a}", "2", "", "x"), false},
		{"a payload missing", fcall("edge:{a}", "2", "", "x", ""), false},
		{"bad key", fcall("news", "1", "", "x"), false},
		{"reserved event last", fcall("edge:{a}", "2", "", "x", "gap", "y"), false},
		{"too large last", append(fcall("edge:{a}", "2", "", "x", "", "01234567890"), opts...), false},
		{"unknown option", fcall("edge:{a}", "1", "", "x", "idempotency-key", "k"), false},
		{"two keys", []string{"FCALL", publishBatchFunction, "2", "edge:{a}", "edge:{b}", "1", "", "x"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := srv.Do(t, "DEL", "edge:{a}"); err != nil {
				t.Fatal(err)
			}
			reply, err := srv.Do(t, tc.args...)
			if (err == nil) != tc.ok {
				t.Fatalf("reply %q, error %v; want success: %v", reply, err, tc.ok)
			}
			n, _ := srv.Do(t, "XLEN", "edge:{a}")
			if !tc.ok && n != "0" {
				t.Fatalf("a refused call stored %s messages", n)
			}
			// A successful call stored COUNT messages and answered as many ids.
			if !tc.ok {
				return
			}
			if count := tc.args[4]; n != count || fmt.Sprint(strings.Count(reply, "-")) != count {
				t.Fatalf("reply %q, stream length %s, want %s", reply, n, count)
			}
		})
	}
}

// A batch finds the function missing (a flushed Redis, a Redis whose
// library predates edge_publish_batch), loads it and publishes.
func TestPublishBatchReloadsFunction(t *testing.T) {
	srv := redistest.Start(t)
	r := startTestRedis(t, srv, RedisConfig{})
	if _, err := srv.Do(t, "FUNCTION", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	done := r.PublishBatch(context.Background(), []edge.Publication{{Channel: "a", Data: []byte("1")}, {Channel: "b", Data: []byte("2")}})
	for i, d := range done {
		if d.Err != nil {
			t.Fatalf("message %d: %v", i, d.Err)
		}
	}
}

// A message over the fleet's max-payload (a node allowing more than the
// fleet it follows) is refused on its own, as Publish refuses it; the
// other messages of its channel are stored.
func TestPublishBatchFleetMaxPayload(t *testing.T) {
	srv := redistest.Start(t)
	if _, err := srv.Do(t, "HSET", settingsKey, optMaxPayload, "4"); err != nil {
		t.Fatal(err)
	}
	r := startTestRedis(t, srv, RedisConfig{MaxPayload: 100})
	done := r.PublishBatch(context.Background(), []edge.Publication{
		{Channel: "a", Data: []byte("1")}, {Channel: "a", Data: []byte("too large")}, {Channel: "a", Data: []byte("3")},
	})
	for i, want := range []error{nil, edge.ErrPayloadTooLarge, nil} {
		if !errors.Is(done[i].Err, want) || (want == nil) != (done[i].Err == nil) {
			t.Fatalf("message %d: %v, want %v", i, done[i].Err, want)
		}
	}
	if _, err := r.Publish(context.Background(), "a", "", []byte("too large")); !errors.Is(err, edge.ErrPayloadTooLarge) {
		t.Fatalf("Publish: %v, want ErrPayloadTooLarge like the batch", err)
	}
	if n, _ := srv.Do(t, "XLEN", "edge:{a}"); n != "2" {
		t.Fatalf("the stream holds %s messages, want 2", n)
	}
}
