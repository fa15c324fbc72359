package transports

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
)

// Refusals of a flood are told to come back spread out: the k-th refusal
// at one instant waits the seconds k refusals need at the rate, plus up
// to retryAfterJitter, and the backlog drains at the rate.
func TestAdmissionSpreadsRetryAfter(t *testing.T) {
	const rate = 10
	a := newAdmission(rate)
	now := time.Unix(1_700_000_000, 0)
	for range rate {
		if err := a.admit(now); err != nil {
			t.Fatalf("within the rate: %v", err)
		}
	}
	seen := map[int]bool{}
	for k := 1; k <= 5*rate; k++ {
		err := a.admit(now)
		var rl rateLimitedError
		if !errors.As(err, &rl) || !errors.Is(err, edge.ErrRateLimited) {
			t.Fatalf("refusal %d: %v", k, err)
		}
		secs := int(rl.wait / time.Second)
		low := int(math.Ceil(float64(k) / rate))
		if secs < low || secs > low+retryAfterJitter {
			t.Fatalf("refusal %d: Retry-After %ds, want %d to %d", k, secs, low, low+retryAfterJitter)
		}
		seen[secs] = true
	}
	if len(seen) < 5 {
		t.Errorf("Retry-After took %d values over 50 refusals, want them spread", len(seen))
	}
	// Five seconds later the backlog of 50 has drained and the bucket is
	// full again.
	later := now.Add(5 * time.Second)
	for range rate {
		if err := a.admit(later); err != nil {
			t.Fatalf("after the backlog drained: %v", err)
		}
	}
	var rl rateLimitedError
	if err := a.admit(later); !errors.As(err, &rl) || rl.wait > (1+retryAfterJitter)*time.Second {
		t.Errorf("first refusal after the drain: %v", err)
	}
}
