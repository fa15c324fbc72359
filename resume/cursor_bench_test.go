package resume_test

import (
	"fmt"
	"testing"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
)

// cursorChannels returns n channel names.
func cursorChannels(n int) []string {
	chans := make([]string, n)
	for i := range chans {
		chans[i] = fmt.Sprintf("channel-%d", i)
	}
	return chans
}

// BenchmarkCursorMerge is the writer's work per delivered message on a
// connection with several channels: move one channel's position and write
// the composite cursor (the SSE id of every event).
func BenchmarkCursorMerge(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("channels=%d", n), func(b *testing.B) {
			chans := cursorChannels(n)
			var c resume.Cursor
			for _, ch := range chans {
				c.Set(ch, edge.ID{Ms: 1700000000000})
			}
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			var seq uint64
			for b.Loop() {
				seq++
				c.Set(chans[seq%uint64(n)], edge.ID{Ms: 1700000000000, Seq: seq})
				buf = c.AppendTo(buf[:0])
			}
		})
	}
}

// BenchmarkParseCursor is a resume's first step: the composite cursor of
// a reconnecting client.
func BenchmarkParseCursor(b *testing.B) {
	chans := cursorChannels(16)
	var c resume.Cursor
	for i, ch := range chans {
		c.Set(ch, edge.ID{Ms: 1700000000000, Seq: uint64(i)})
	}
	s := c.String()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := resume.ParseCursor(s, chans); err != nil {
			b.Fatal(err)
		}
	}
}

// Moving a position and writing the cursor allocates nothing once the
// cursor knows its channels: it runs for every message a writer sends.
func TestCursorMergeAllocationBudget(t *testing.T) {
	chans := cursorChannels(8)
	var c resume.Cursor
	for _, ch := range chans {
		c.Set(ch, edge.ID{Ms: 1700000000000})
	}
	buf := make([]byte, 0, 1024)
	var seq uint64
	allocs := testing.AllocsPerRun(1000, func() {
		seq++
		c.Set(chans[seq%8], edge.ID{Ms: 1700000000000, Seq: seq})
		buf = c.AppendTo(buf[:0])
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per cursor update and write, want 0", allocs)
	}
}
