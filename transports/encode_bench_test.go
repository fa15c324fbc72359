package transports

import (
	"strings"
	"testing"

	"github.com/edgeworks/edge/edge"
)

func benchMessage() edge.Message {
	return edge.Message{Channel: "prices", ID: edge.ID{Ms: 1732270000000, Seq: 3}, Event: "tick",
		Data: []byte(`{"symbol":"BTC","price":97123.5,"note":"` + strings.Repeat("x", 40) + `"}`)}
}

func BenchmarkEncodeJSON(b *testing.B) {
	m := benchMessage()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendMessageJSON(buf[:0], &m)
	}
}

func BenchmarkEncodeSSE(b *testing.B) {
	m := benchMessage()
	id := m.ID.AppendTo(nil)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendSSEEvent(buf[:0], id, m.Event, m.Data)
	}
}

// The encoders write into a caller's buffer: no allocation per message.
func TestEncodersDoNotAllocate(t *testing.T) {
	m := benchMessage()
	id := m.ID.AppendTo(nil)
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = appendMessageJSON(buf[:0], &m) }); n != 0 {
		t.Fatalf("appendMessageJSON: %.1f allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = appendSSEEvent(buf[:0], id, m.Event, m.Data) }); n != 0 {
		t.Fatalf("appendSSEEvent: %.1f allocations", n)
	}
}
