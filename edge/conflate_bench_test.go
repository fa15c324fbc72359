package edge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
)

// BenchmarkFanoutConflate relays one message per iteration, of one of 8
// keys, to a channel with subs local sessions, plain or conflating with a
// window that ends every 64 messages (a fake clock): its ns/op over subs
// is the fan-out cost per delivery, and its allocs/op, the Frame the hub
// builds once per message, shows that a conflating subscriber encodes and
// allocates nothing per message. Every 64 messages the queues are taken,
// as writers would.
func BenchmarkFanoutConflate(b *testing.B) {
	for _, conflate := range []bool{false, true} {
		for _, subs := range []int{100, 10_000} {
			b.Run(fmt.Sprintf("conflate=%v/subs=%d", conflate, subs), func(b *testing.B) {
				benchFanoutConflate(b, subs, conflate)
			})
		}
	}
}

func benchFanoutConflate(b *testing.B, subs int, conflate bool) {
	h, broker := newHub(b, edge.Config{QueueBytes: 64 << 20})
	clock := &fakeClock{}
	edge.SetConflateClock(h, clock.AfterFunc)
	sessions := make([]*edge.Session, subs)
	for i := range sessions {
		sessions[i] = newSession(b, h)
		if conflate {
			sessions[i].SetConflate(time.Second)
		}
		joinLive(b, sessions[i], "bench")
	}
	var keys [8]string
	for i := range keys {
		keys[i] = fmt.Sprintf("instrument-%d", i)
	}
	m := edge.Message{Channel: "bench", ID: edge.ID{Ms: uint64(time.Now().Add(time.Hour).UnixMilli())}, Data: make([]byte, 100)}
	ctx := context.Background()
	buf := make([]*edge.Frame, 0, 64)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		m.ID.Seq++
		m.Key = keys[i%len(keys)]
		broker.relay(ctx, m)
		if i%64 == 63 {
			clock.tick()
			for _, s := range sessions {
				buf = s.Take(buf[:0])
				clear(buf)
			}
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N)/float64(subs), "ns/delivery")
}
