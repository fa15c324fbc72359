package resume

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeworks/edge/edge"
)

// redisReply is an error Redis answered with, as go-redis reports one.
type redisReply string

func (e redisReply) Error() string { return string(e) }
func (redisReply) RedisError()     {}

// TestRoundTripHook reports each round trip once, by outcome: a missing
// key and a canceled call are answers, an error reply is passed on, and a
// round trip without an answer is unavailable.
func TestRoundTripHook(t *testing.T) {
	reply := redisReply("ERR no such key")
	tests := []struct {
		name        string
		err         error
		want        error // nil: reported as answered
		unavailable bool
	}{
		{"answered", nil, nil, false},
		{"missing key", redis.Nil, nil, false},
		{"canceled by its caller", context.Canceled, nil, false},
		{"error reply", reply, reply, false},
		{"no answer", errors.New("dial tcp: connection refused"), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []error
			h := roundTripHook(func(_ context.Context, took time.Duration, err error) {
				if took < 0 {
					t.Errorf("took %v", took)
				}
				got = append(got, err)
			})
			cmd := redis.NewStatusCmd(context.Background(), "PING")
			cmd.SetErr(tt.err)
			h.ProcessHook(func(_ context.Context, cmd redis.Cmder) error { return cmd.Err() })(context.Background(), cmd)
			h.ProcessPipelineHook(func(context.Context, []redis.Cmder) error { return tt.err })(context.Background(), nil)
			if len(got) != 2 {
				t.Fatalf("%d reports for a command and a pipeline, want 2", len(got))
			}
			for _, err := range got {
				switch {
				case tt.unavailable:
					if !errors.Is(err, edge.ErrUnavailable) || !errors.Is(err, tt.err) {
						t.Errorf("reported %v, want it to wrap edge.ErrUnavailable and %v", err, tt.err)
					}
				case err != tt.want:
					t.Errorf("reported %v, want %v", err, tt.want)
				}
			}
		})
	}
}
