package transports

import (
	stdgzip "compress/gzip"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// dashboard yields SSE events of the dashboard load: a JSON state
// of about 1 KiB, of which each update changes a couple of values and the
// time.
type dashboard struct {
	rng    *rand.Rand
	values [48]float64
	n      int
}

func newDashboard(seed uint64) *dashboard {
	d := &dashboard{rng: rand.New(rand.NewPCG(seed, 1))}
	for i := range d.values {
		d.values[i] = d.rng.Float64() * 1000
	}
	return d
}

// next returns the next event as the SSE stream carries it.
func (d *dashboard) next(b []byte) []byte {
	d.n++
	for range 2 {
		d.values[d.rng.IntN(len(d.values))] = d.rng.Float64() * 1000
	}
	b = append(b, "id: 1765111111"...)
	b = strconv.AppendInt(b, int64(100000+d.n), 10)
	b = append(b, "-0\ndata: {\"ts\":1765111111"...)
	b = strconv.AppendInt(b, int64(100000+d.n*50), 10)
	for i, v := range d.values {
		b = append(b, ",\"widget_"...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, "\":"...)
		b = strconv.AppendFloat(b, v, 'f', 2, 64)
	}
	return append(b, "}\n\n"...)
}

// eventCompressor is a candidate way to compress an SSE stream, event by
// event, each event flushed.
type eventCompressor interface {
	event(w io.Writer, p []byte) error
}

type flusher interface {
	io.Writer
	Flush() error
}

// streamingGzip keeps its context (a window) across events.
type streamingGzip struct{ z flusher }

func (s *streamingGzip) event(_ io.Writer, p []byte) error {
	if _, err := s.z.Write(p); err != nil {
		return err
	}
	return s.z.Flush()
}

// statelessDict compresses each event alone, with the last bytes sent as
// a dictionary (dict bytes at most; 0: none).
type statelessDict struct {
	dict []byte
	max  int
}

func (s *statelessDict) event(w io.Writer, p []byte) error {
	if err := flate.StatelessDeflate(w, p, false, s.dict); err != nil {
		return err
	}
	if s.max > 0 {
		s.dict = append(s.dict, p...)
		if len(s.dict) > s.max {
			s.dict = append(s.dict[:0], s.dict[len(s.dict)-s.max:]...)
		}
	}
	return nil
}

type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

var compressorCandidates = []struct {
	name string
	new  func(w io.Writer) eventCompressor
}{
	{"stdlib-gzip-1", func(w io.Writer) eventCompressor {
		z, _ := stdgzip.NewWriterLevel(w, stdgzip.BestSpeed)
		return &streamingGzip{z}
	}},
	{"stdlib-gzip-6", func(w io.Writer) eventCompressor {
		z, _ := stdgzip.NewWriterLevel(w, stdgzip.DefaultCompression)
		return &streamingGzip{z}
	}},
	{"klauspost-gzip-1", func(w io.Writer) eventCompressor {
		z, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		return &streamingGzip{z}
	}},
	{"klauspost-gzip-5", func(w io.Writer) eventCompressor {
		z, _ := gzip.NewWriterLevel(w, 5)
		return &streamingGzip{z}
	}},
	{"klauspost-window-8k", func(w io.Writer) eventCompressor {
		z, _ := gzip.NewWriterWindow(w, 8<<10)
		return &streamingGzip{z}
	}},
	{"klauspost-stateless", func(io.Writer) eventCompressor { return &statelessDict{} }},
	{"klauspost-stateless-dict-2k", func(io.Writer) eventCompressor { return &statelessDict{max: 2 << 10} }},
	{"klauspost-stateless-dict-8k", func(io.Writer) eventCompressor { return &statelessDict{max: 8 << 10} }},
}

// BenchmarkCompressorChoice measures the candidates on the dashboard load:
// the bytes on the wire per event, and the heap each open stream keeps
// (its compressor after a few events), beside the time per event.
//
//	go test ./transports -run '^$' -bench CompressorChoice -benchtime 2000x
func BenchmarkCompressorChoice(b *testing.B) {
	const conns, warm = 200, 20
	for _, c := range compressorCandidates {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			d := newDashboard(1)
			var cw countWriter
			z := c.new(&cw)
			var ev []byte
			for range warm {
				ev = d.next(ev[:0])
				z.event(&cw, ev)
			}
			cw.n = 0
			raw := 0
			b.ResetTimer()
			for range b.N {
				ev = d.next(ev[:0])
				raw += len(ev)
				if err := z.event(&cw, ev); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(raw)/float64(b.N), "raw-B/event")
			b.ReportMetric(float64(cw.n)/float64(b.N), "wire-B/event")
			b.ReportMetric(heapPerStream(conns, warm, c.new), "heap-B/stream")
		})
	}
}

// heapPerStream opens n compressed streams, writes each warm events, and
// returns the heap in use per stream.
func heapPerStream(n, warm int, newC func(io.Writer) eventCompressor) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	keep := make([]eventCompressor, n)
	d := newDashboard(2)
	var ev []byte
	for i := range keep {
		keep[i] = newC(io.Discard)
		for range warm {
			ev = d.next(ev[:0])
			keep[i].event(io.Discard, ev)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / float64(n)
}

func TestDashboardEventSize(t *testing.T) {
	ev := newDashboard(1).next(nil)
	if len(ev) < 900 || len(ev) > 1200 {
		t.Fatalf("event of %d bytes, want about 1 KiB: %s", len(ev), ev)
	}
}
