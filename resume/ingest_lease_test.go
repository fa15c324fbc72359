package resume

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/edgeworks/edge/resume/redistest"
)

// leaseGate is a go-redis hook that holds the first lease renewal (the
// script's EVALSHA or EVAL) until release is closed.
type leaseGate struct {
	entered chan struct{} // closed when the renewal is held
	release chan struct{}
	once    sync.Once
}

func (g *leaseGate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *leaseGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); n == "evalsha" || n == "eval" {
			g.once.Do(func() {
				close(g.entered)
				<-g.release
			})
		}
		return next(ctx, cmd)
	}
}

func (g *leaseGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// The ingest relay owns the goroutine that holds its lease: it stops it
// and waits for it before it returns, even while the lease is stuck in a
// Redis round trip, so that Run, which waits for the relay, returns only
// when every goroutine it started has ended.
func TestIngestWaitsForItsLease(t *testing.T) {
	srv := redistest.Start(t)
	ignore := goleak.IgnoreCurrent()
	r, err := NewRedis(RedisConfig{URLs: []string{srv.URL()}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	gate := &leaseGate{entered: make(chan struct{}), release: make(chan struct{})}
	r.rdb.AddHook(gate)
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan struct{})
	go func() {
		r.runIngest(ctx, "plain.*")
		close(returned)
	}()
	<-gate.entered
	cancel()
	// runIngest must not return while the renewal is held. This bounds
	// how long the test looks for a return that would be a leak; a
	// correct runIngest passes whatever the machine's speed.
	select {
	case <-returned:
		t.Fatal("runIngest returned while its lease goroutine was still running")
	case <-time.After(100 * time.Millisecond):
	}
	close(gate.release)
	<-returned
	r.rdb.Close()
	goleak.VerifyNone(t, ignore)
}
