package transports

import (
	"net/http"
	"testing"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/transports/internal/hijack"
)

// dashboardFrames returns n frames of the dashboard load (see dashboard),
// one after the other, each encoded for SSE once as fan-out encodes it.
func dashboardFrames(n int) []*edge.Frame {
	d := newDashboard(3)
	frames := make([]*edge.Frame, n)
	var ev []byte
	for i := range frames {
		ev = d.next(ev[:0])
		// The payload alone: from the first "{" to the end of its line.
		start := 0
		for ev[start] != '{' {
			start++
		}
		data := append([]byte(nil), ev[start:len(ev)-2]...)
		frames[i] = edge.NewFrame(edge.Message{Channel: "dash", ID: edge.ID{Ms: 1765111111000 + uint64(i)}, Data: data})
		frameSSE(frames[i])
		frameJSON(frames[i])
	}
	return frames
}

// BenchmarkSSEDelivery is the edge's work to deliver one dashboard update
// (about 1 KiB) to one SSE stream, plain and gzip-encoded: the frame's
// SSE bytes (encoded once per message, shared by every stream) into the
// stream's buffer, compressed for a compressed stream, and written
// (here, to nothing). wire-B/event is what the client receives.
//
//	go test ./transports -run '^$' -bench 'SSEDelivery|PollDelivery'
func BenchmarkSSEDelivery(b *testing.B) {
	frames := dashboardFrames(1000)
	for _, gz := range []bool{false, true} {
		name := "plain"
		if gz {
			name = "gzip"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			wire := 0
			c := &sseConn{out: func(p []byte) error { wire += len(p); return nil }}
			if gz {
				c.gz = new(gzipStream)
				plain := c.out
				c.out = func(p []byte) error { return c.writeGzip(plain, p) }
			}
			for i := range 20 { // a stream that has run a while
				c.takeBuf()
				c.appendFrame(frames[i])
				c.writeBuf()
			}
			wire = 0
			i := 0
			for b.Loop() {
				c.takeBuf()
				c.appendFrame(frames[i%len(frames)])
				if err := c.writeBuf(); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(wire)/float64(b.N), "wire-B/event")
		})
	}
}

// BenchmarkPollDelivery is the edge's work to answer a long-poll with
// one dashboard update, plain and gzip-encoded: the JSON answer, its
// compression, and the whole HTTP response of a parked poll.
func BenchmarkPollDelivery(b *testing.B) {
	frames := dashboardFrames(1000)
	for _, gz := range []bool{false, true} {
		name := "plain"
		if gz {
			name = "gzip"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			wire, i := 0, 0
			for b.Loop() {
				f := frames[i%len(frames)]
				a := pollAnswer{frames: []*edge.Frame{f}}
				a.cursor.Set("dash", f.ID)
				body := a.appendJSON(nil)
				var resp []byte
				if gz {
					z := appendGzip(nil, append(body, '\n'))
					resp = hijack.AppendEncodedJSON(make([]byte, 0, 256+len(z)), http.StatusOK, nil, "gzip", z, true)
				} else {
					resp = hijack.AppendJSON(make([]byte, 0, 256+len(body)), http.StatusOK, nil, body, true)
				}
				wire += len(resp)
				i++
			}
			b.ReportMetric(float64(wire)/float64(b.N), "wire-B/answer")
		})
	}
}
