package edge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/centrifugal/fdelta"

	"github.com/edgeworks/edge/edge"
)

// BenchmarkDeltaPatch makes and applies the patch between two updates of
// the dashboard state, and reports the sizes.
func BenchmarkDeltaPatch(b *testing.B) {
	prev, next := edge.DashboardState(1), edge.DashboardState(2)
	patch := fdelta.Create(prev, next)
	b.Run("create", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fdelta.Create(prev, next)
		}
		b.ReportMetric(float64(len(next)), "payload-bytes")
		b.ReportMetric(float64(len(patch)), "patch-bytes")
	})
	b.Run("apply", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fdelta.Apply(prev, patch); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFanoutDelta publishes dashboard updates to subs sessions, all
// plain or all delta subscribers, and counts an iteration done when every
// session took every frame: what deltas cost the hub (one patch per
// message, the per-key state, each session's choice).
func BenchmarkFanoutDelta(b *testing.B) {
	for _, subs := range []int{1, 100, 10_000} {
		for _, delta := range []bool{false, true} {
			name := fmt.Sprintf("subs=%d/plain", subs)
			if delta {
				name = fmt.Sprintf("subs=%d/delta", subs)
			}
			b.Run(name, func(b *testing.B) { benchFanoutDelta(b, subs, delta) })
		}
	}
}

func benchFanoutDelta(b *testing.B, subs int, delta bool) {
	h, broker := newHub(b, edge.Config{QueueBytes: 256 << 20})
	ctx := context.Background()
	sessions := make([]*edge.Session, subs)
	for i := range sessions {
		sessions[i] = newSession(b, h)
		sessions[i].SetDelta(delta)
		if _, err := sessions[i].Join(ctx, "bench", nil, nil); err != nil {
			b.Fatalf("Join: %v", err)
		}
	}
	payloads := make([][]byte, 64)
	for i := range payloads {
		payloads[i] = edge.DashboardState(i)
	}
	d := startDrainers(sessions, b.N)

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := broker.Publish(ctx, "bench", "", payloads[i%len(payloads)]); err != nil {
			b.Fatalf("Publish: %v", err)
		}
	}
	d.wait(b)
	elapsed := time.Since(start)
	b.StopTimer()
	d.check(b)
	b.ReportMetric(float64(b.N)*float64(subs)/elapsed.Seconds(), "deliveries/s")
}
