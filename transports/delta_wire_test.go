package transports

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
)

// dashboardUpdate is the dashboard payload: 1 KiB of JSON state, a value
// of which changes at each update.
func dashboardUpdate(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"widgets":[`)
	for i := range 16 {
		if i > 0 {
			b.WriteByte(',')
		}
		v := i * 7
		if i%5 == n%5 {
			v += n
		}
		fmt.Fprintf(&b, `{"id":"widget-%c","label":"Requests per second","value":%d,"unit":"rps"}`, 'a'+i, v)
	}
	fmt.Fprintf(&b, `],"updated":%d}`, 1732270000000+n*50)
	return []byte(b.String())
}

// BenchmarkDeltaWire publishes dashboard updates through a hub to a
// plain and a delta session and reports the bytes per message each
// would write: the WebSocket frame's JSON object (long-poll's is the
// same), and the SSE event (plain: of one channel; delta: the JSON
// object's event, which a delta stream always sends).
func BenchmarkDeltaWire(b *testing.B) {
	store := resume.NewMemory(resume.MemoryConfig{})
	h := edge.NewHub(store, edge.Config{QueueBytes: 1 << 30}, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	plain, _ := h.NewSession()
	delta, _ := h.NewSession()
	defer plain.Release()
	defer delta.Release()
	delta.SetDelta(true)
	for _, s := range []*edge.Session{plain, delta} {
		if _, err := s.Join(ctx, "dash", nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	var payload, plainJSON, deltaJSON, plainSSE, deltaSSE, n int
	var buf []*edge.Frame
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := dashboardUpdate(i % 1000)
		if _, err := store.Publish(ctx, "dash", "", p); err != nil {
			b.Fatal(err)
		}
		buf = plain.Take(buf[:0])
		for _, f := range buf {
			plainJSON += len(frameJSON(f))
			plainSSE += len(frameSSE(f))
		}
		buf = delta.Take(buf[:0])
		for _, f := range buf {
			deltaJSON += len(frameJSON(f))
			deltaSSE += len(frameSSEMulti(f)) + len("id: ") + len(f.ID.String()) + 1
		}
		payload += len(p)
		n++
	}
	b.ReportMetric(float64(payload)/float64(n), "payload-B/msg")
	b.ReportMetric(float64(plainJSON)/float64(n), "json-plain-B/msg")
	b.ReportMetric(float64(deltaJSON)/float64(n), "json-delta-B/msg")
	b.ReportMetric(float64(plainSSE)/float64(n), "sse-plain-B/msg")
	b.ReportMetric(float64(deltaSSE)/float64(n), "sse-delta-B/msg")
}
