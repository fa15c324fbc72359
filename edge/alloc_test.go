package edge_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
)

// Fan-out allocates per message, never per subscriber: publishing to 1000
// live sessions (whose writers take their frames) stays within a small
// constant budget.
func TestFanoutAllocationBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation budget: not in -short")
	}
	broker := resume.NewMemory(resume.MemoryConfig{})
	hub := edge.NewHub(broker, edge.Config{QueueBytes: 64 << 20}, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	var sessions []*edge.Session
	for range 1000 {
		s, err := hub.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Release()
		if _, err := s.Join(ctx, "hot", nil, func(edge.Page) error { return nil }); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	payload := make([]byte, 100)
	buf := make([]*edge.Frame, 0, 4)
	allocs := testing.AllocsPerRun(200, func() {
		broker.Publish(ctx, "hot", "", payload)
		for _, s := range sessions {
			buf = s.Take(buf[:0])
		}
	})
	// The stored copy of the payload, the frame, and slack for the ring.
	const budget = 4
	if allocs > budget {
		t.Fatalf("%.1f allocations per publish to 1000 sessions, budget %d", allocs, budget)
	}
}
