package edge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
)

// BenchmarkFanout publishes one 100-byte message per iteration to a channel
// with subs local sessions, and counts an iteration done only when every
// session has taken every frame. One drainer goroutine per
// sessionsPerDrainer sessions plays the connections' writers.
func BenchmarkFanout(b *testing.B) {
	for _, subs := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) { benchFanout(b, subs) })
	}
}

const sessionsPerDrainer = 1000

func benchFanout(b *testing.B, subs int) {
	// A queue this large never fills, so no session is closed as slow.
	h, broker := newHub(b, edge.Config{QueueBytes: 64 << 20})
	ctx := context.Background()
	sessions := make([]*edge.Session, subs)
	for i := range sessions {
		sessions[i] = newSession(b, h)
		if _, err := sessions[i].Join(ctx, "bench", nil, nil); err != nil {
			b.Fatalf("Join: %v", err)
		}
	}
	payload := make([]byte, 100)

	d := startDrainers(sessions, b.N)

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := broker.Publish(ctx, "bench", "", payload); err != nil {
			b.Fatalf("Publish: %v", err)
		}
	}
	d.wait(b)
	elapsed := time.Since(start)
	b.StopTimer()
	d.check(b)
	b.ReportMetric(float64(b.N)*float64(subs)/elapsed.Seconds(), "deliveries/s")
}

// drainers take the frames of sessions on goroutines of
// sessionsPerDrainer sessions each, until each session has want of them.
type drainers struct {
	want    int
	stop    chan struct{}
	drained chan struct{}
	mu      sync.Mutex
	failure string // guarded by mu
}

// startDrainers starts draining sessions until each has want frames.
func startDrainers(sessions []*edge.Session, want int) *drainers {
	d := &drainers{want: want, stop: make(chan struct{}), drained: make(chan struct{})}
	var wg sync.WaitGroup
	for lo := 0; lo < len(sessions); lo += sessionsPerDrainer {
		group := sessions[lo:min(lo+sessionsPerDrainer, len(sessions))]
		wg.Go(func() {
			if msg := drain(group, want, d.stop); msg != "" {
				d.mu.Lock()
				d.failure = msg
				d.mu.Unlock()
			}
		})
	}
	go func() { wg.Wait(); close(d.drained) }()
	return d
}

// wait waits until the drainers are done, failing b after a minute.
func (d *drainers) wait(b *testing.B) {
	select {
	case <-d.drained:
	case <-time.After(time.Minute):
		close(d.stop)
		<-d.drained
		b.Fatalf("sessions did not receive %d frames each within a minute", d.want)
	}
}

// check fails b with what a drainer found wrong, if anything.
func (d *drainers) check(b *testing.B) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failure != "" {
		b.Fatal(d.failure)
	}
}

// drain takes frames from group until each session has want of them. It
// returns a failure message when a session closes or stop is closed.
func drain(group []*edge.Session, want int, stop <-chan struct{}) string {
	counts := make([]int, len(group))
	remaining := len(group)
	if want == 0 {
		return ""
	}
	var buf []*edge.Frame
	for remaining > 0 {
		progressed := false
		for i, s := range group {
			if counts[i] >= want {
				continue
			}
			buf = s.Take(buf[:0])
			if len(buf) == 0 {
				continue
			}
			progressed = true
			counts[i] += len(buf)
			clear(buf)
			if counts[i] >= want {
				remaining--
			}
		}
		if progressed {
			continue
		}
		for i, s := range group {
			if d, closed := s.Closed(); closed {
				return fmt.Sprintf("session closed (%v) after %d of %d frames", d, counts[i], want)
			}
		}
		select {
		case <-stop:
			return "stopped"
		default:
			runtime.Gosched()
		}
	}
	return ""
}

// BenchmarkFrameEncodeOnce has readers writers ask a new frame for its JSON
// encoding: the cost and allocations per frame stay those of one build
// whatever the number of readers.
func BenchmarkFrameEncodeOnce(b *testing.B) {
	msg := edge.Message{Channel: "bench", ID: edge.ID{Ms: 1732270000000, Seq: 3}, Data: make([]byte, 100)}
	for _, readers := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("readers=%d", readers), func(b *testing.B) {
			builds := 0
			build := func(m *edge.Message) any {
				builds++
				v, err := json.Marshal(struct {
					Channel string `json:"channel"`
					ID      string `json:"id"`
					Event   string `json:"event,omitempty"`
					Data    string `json:"data"`
				}{m.Channel, m.ID.String(), m.Event, string(m.Data)})
				if err != nil {
					panic(err)
				}
				return v
			}
			b.ReportAllocs()
			for b.Loop() {
				f := edge.NewFrame(msg)
				for range readers {
					if v := f.Encoded(edge.EncodingJSON, build); v == nil {
						b.Fatal("no encoding")
					}
				}
			}
			if builds != b.N {
				b.Fatalf("built %d encodings for %d frames", builds, b.N)
			}
			b.ReportMetric(float64(builds)/float64(b.N), "builds/frame")
		})
	}
}
