package resume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeworks/edge/edge"
)

// Name returns "redis": what a status page calls this store.
func (r *Redis) Name() string { return "redis" }

// OnRoundTrip makes r call observe after each round trip to Redis (a
// pipeline counts once) with how long it took and how it ended: a nil
// error when Redis answered (a missing key is an answer, and a call that
// its caller canceled is not a failure of Redis), the error Redis answered
// with, or an error wrapping edge.ErrUnavailable when no answer came
// (connection lost, timeout). observe must not block. Call OnRoundTrip
// before Run.
func (r *Redis) OnRoundTrip(observe func(ctx context.Context, took time.Duration, err error)) {
	r.rdb.AddHook(roundTripHook(observe))
}

// roundTripHook is a go-redis hook that reports each round trip.
type roundTripHook func(ctx context.Context, took time.Duration, err error)

func (h roundTripHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h roundTripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h(ctx, time.Since(start), outcome(err))
		return err
	}
}

func (h roundTripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h(ctx, time.Since(start), outcome(err))
		return err
	}
}

// outcome is err as OnRoundTrip reports it.
func outcome(err error) error {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) {
		return nil
	}
	if _, answered := err.(redis.Error); answered {
		return err
	}
	return fmt.Errorf("%w: redis round trip: %w", edge.ErrUnavailable, err)
}
