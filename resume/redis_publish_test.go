package resume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume/redistest"
)

// publishGate is a go-redis hook that holds the first hold sends of
// publishes (a single FCALL or a pipeline of them) until the test releases
// them, and records how many FCALLs each send carried.
type publishGate struct {
	entered chan heldSend

	mu sync.Mutex
	// mu guards hold and sizes.
	hold  int
	sizes []int
}

// heldSend is a send the gate holds until release is closed.
type heldSend struct {
	fcalls  int
	release chan struct{}
}

func newPublishGate(hold int) *publishGate {
	return &publishGate{entered: make(chan heldSend), hold: hold}
}

func (g *publishGate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *publishGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		g.pass([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (g *publishGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		g.pass(cmds)
		return next(ctx, cmds)
	}
}

func (g *publishGate) pass(cmds []redis.Cmder) {
	n := 0
	for _, c := range cmds {
		if c.Name() == "fcall" {
			n++
		}
	}
	if n == 0 {
		return
	}
	g.mu.Lock()
	g.sizes = append(g.sizes, n)
	held := g.hold > 0
	if held {
		g.hold--
	}
	g.mu.Unlock()
	if held {
		h := heldSend{fcalls: n, release: make(chan struct{})}
		g.entered <- h
		<-h.release
	}
}

func (g *publishGate) sends() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.sizes...)
}

// waitQueued yields until n publishes wait for a pipeline. The test holds
// every pipeline, so they have nowhere else to go.
func (q *publishQueue) waitQueued(n int) {
	for {
		q.mu.Lock()
		queued := len(q.calls)
		q.mu.Unlock()
		if queued >= n {
			return
		}
		runtime.Gosched()
	}
}

func startTestRedis(t *testing.T, srv *redistest.Server, cfg RedisConfig) *Redis {
	t.Helper()
	cfg.URLs = []string{srv.URL()}
	r, err := NewRedis(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

type publishResult struct {
	data string
	id   edge.ID
	err  error
}

// Publishes that arrive while every pipeline is in flight go out together
// in the next one, each with its own answer: an FCALL that Redis refuses
// fails alone, and a publish given up while it waited is never sent.
func TestRedisPublishPipelinesWaitingPublishes(t *testing.T) {
	srv := redistest.Start(t)
	r := startTestRedis(t, srv, RedisConfig{MaxPayload: 64})
	gate := newPublishGate(maxPublishPipelines)
	r.rdb.AddHook(gate)
	ctx := context.Background()
	results := make(chan publishResult)
	publish := func(data string) {
		id, err := r.Publish(ctx, "p", "", []byte(data))
		results <- publishResult{data, id, err}
	}

	var held []heldSend
	for i := range maxPublishPipelines {
		go publish(fmt.Sprint("held-", i))
		h := <-gate.entered
		if h.fcalls != 1 {
			t.Fatalf("a lone publish went out with %d FCALLs", h.fcalls)
		}
		held = append(held, h)
	}
	gaveUp, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Publish(gaveUp, "p", "", []byte("given up")); !errors.Is(err, edge.ErrUnavailable) {
		t.Fatalf("a publish whose context ended while it waited: %v, want ErrUnavailable", err)
	}
	const queued = 10
	tooLarge := strings.Repeat("x", 65) // the function refuses it
	for i := range queued {
		data := fmt.Sprint("queued-", i)
		if i%4 == 3 {
			data = tooLarge
		}
		go publish(data)
	}
	r.publishes.waitQueued(queued)

	acked := map[string]edge.ID{}
	collect := func(n int) {
		for range n {
			res := <-results
			switch {
			case res.data == tooLarge:
				if !errors.Is(res.err, edge.ErrPayloadTooLarge) {
					t.Errorf("a refused FCALL answered %v, %v; want payload too large", res.id, res.err)
				}
			case res.err != nil:
				t.Errorf("publish %q: %v", res.data, res.err)
			default:
				acked[res.data] = res.id
			}
		}
	}
	// The first held pipeline ends and hands the next to the oldest
	// waiting publish, which sends every waiting FCALL at once.
	close(held[0].release)
	collect(1 + queued)
	for _, h := range held[1:] {
		close(h.release)
		collect(1)
	}
	want := []int{1, 1, queued}
	if got := gate.sends(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("FCALLs per send %v, want %v", got, want)
	}

	page, err := r.History(ctx, "p", edge.ID{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != len(acked) {
		t.Errorf("the stream holds %d messages, %d were acknowledged", len(page.Messages), len(acked))
	}
	for i, m := range page.Messages {
		if i > 0 && !page.Messages[i-1].ID.Less(m.ID) {
			t.Errorf("ids not increasing: %v then %v", page.Messages[i-1].ID, m.ID)
		}
		if id, ok := acked[string(m.Data)]; !ok || id != m.ID {
			t.Errorf("stored %q as %v; acknowledged as %v (%t)", m.Data, m.ID, id, ok)
		}
	}
}

// A pipeline that finds the function gone (a Redis restarted without
// persistence, a FUNCTION FLUSH) loads it and sends its FCALLs again:
// "Function not found" means none of them ran.
func TestRedisPublishPipelineReloadsTheFunction(t *testing.T) {
	srv := redistest.Start(t)
	r := startTestRedis(t, srv, RedisConfig{})
	gate := newPublishGate(maxPublishPipelines + 1)
	r.rdb.AddHook(gate)
	results := make(chan publishResult)
	publish := func(data string) {
		id, err := r.Publish(context.Background(), "f", "", []byte(data))
		results <- publishResult{data, id, err}
	}
	var held []heldSend
	for i := range maxPublishPipelines {
		go publish(fmt.Sprint("held-", i))
		held = append(held, <-gate.entered)
	}
	const queued = 5
	for i := range queued {
		go publish(fmt.Sprint("queued-", i))
	}
	r.publishes.waitQueued(queued)
	close(held[0].release)
	if res := <-results; res.err != nil {
		t.Fatal(res.err)
	}
	batch := <-gate.entered
	if batch.fcalls != queued {
		t.Fatalf("the waiting publishes went out with %d FCALLs, want %d", batch.fcalls, queued)
	}
	if _, err := srv.Do(t, "FUNCTION", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	close(batch.release)
	for range queued {
		if res := <-results; res.err != nil {
			t.Errorf("publish %q after FUNCTION FLUSH: %v", res.data, res.err)
		}
	}
	for _, h := range held[1:] {
		close(h.release)
		if res := <-results; res.err != nil {
			t.Fatal(res.err)
		}
	}
	page, err := r.History(context.Background(), "f", edge.ID{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != maxPublishPipelines+queued {
		t.Fatalf("%d messages stored, want %d (each exactly once)", len(page.Messages), maxPublishPipelines+queued)
	}
}
