package transports_test

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

// publishRecorder is a ResponseWriter that keeps only the status and
// reuses its header map, so that a benchmark counts the handler's own
// allocations, not the recorder's.
type publishRecorder struct {
	h      http.Header
	status int
	body   []byte
}

func (w *publishRecorder) Header() http.Header { return w.h }

func (w *publishRecorder) WriteHeader(status int) { w.status = status }

func (w *publishRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body[:0], p...)
	return len(p), nil
}

// SetReadDeadline is there as on net/http's writers, whose body reads
// the publish handler bounds.
func (w *publishRecorder) SetReadDeadline(time.Time) error { return nil }

func (w *publishRecorder) reset() {
	clear(w.h)
	w.status = 0
}

// publishClient posts one payload over and over to a handler, as a
// keep-alive publisher of the load tool does.
type publishClient struct {
	req     *http.Request
	body    *bytes.Reader
	payload []byte
	w       publishRecorder
}

func newPublishClient(channel string) *publishClient {
	payload := bytes.Repeat([]byte("x"), 100)
	c := &publishClient{payload: payload, body: bytes.NewReader(payload), w: publishRecorder{h: http.Header{}}}
	c.req = httptest.NewRequest(http.MethodPost, "/v1/publish?channel="+channel, nil)
	c.req.RemoteAddr = "127.0.0.1:40000" // a loopback backend: no publish key needed
	c.req.Host = "127.0.0.1:8080"
	c.req.Body = io.NopCloser(c.body)
	return c
}

// publish serves one publish and fails b unless it was acknowledged.
func (c *publishClient) publish(b *testing.B, h http.Handler) {
	c.body.Reset(c.payload)
	c.req.ContentLength = int64(len(c.payload))
	c.w.reset()
	h.ServeHTTP(&c.w, c.req)
	if c.w.status != http.StatusOK {
		b.Fatalf("publish answered %d: %s", c.w.status, c.w.body)
	}
}

func newPublishHandler() http.Handler {
	cfg := transports.Config{}.WithDefaults()
	srv, err := transports.New(cfg, resume.NewMemory(resume.MemoryConfig{}), slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	return srv.Handler()
}

// BenchmarkPublishHandler measures POST /v1/publish through the server's
// handler (CORS, routing, validation, body, embedded store, answer)
// without the network: what the edge adds to net/http per publish.
func BenchmarkPublishHandler(b *testing.B) {
	h := newPublishHandler()
	c := newPublishClient("bench-0")
	b.ReportAllocs()
	for b.Loop() {
		c.publish(b, h)
	}
}

// BenchmarkPublishHandlerParallel is BenchmarkPublishHandler with 64
// concurrent publishers per GOMAXPROCS on one channel, as the load tool
// runs them: it shows contention on the channel.
func BenchmarkPublishHandlerParallel(b *testing.B) {
	h := newPublishHandler()
	b.ReportAllocs()
	b.SetParallelism(64)
	b.RunParallel(func(pb *testing.PB) {
		c := newPublishClient("bench-0")
		for pb.Next() {
			c.publish(b, h)
		}
	})
}

// BenchmarkPublishBatchHandler measures POST /v1/publish/batch with 100
// messages of 100 bytes to one channel through the server's handler,
// without the network; ns/op and allocs/op are per batch.
func BenchmarkPublishBatchHandler(b *testing.B) {
	h := newPublishHandler()
	var body bytes.Buffer
	body.WriteString(`{"messages":[`)
	for i := range 100 {
		if i > 0 {
			body.WriteByte(',')
		}
		body.WriteString(`{"channel":"bench-0","data":"` + string(bytes.Repeat([]byte("x"), 100)) + `"}`)
	}
	body.WriteString(`]}`)
	c := newPublishClient("bench-0")
	c.payload = body.Bytes()
	c.req.URL.Path, c.req.URL.RawQuery = "/v1/publish/batch", ""
	b.ReportAllocs()
	for b.Loop() {
		c.publish(b, h)
	}
}

// BenchmarkPublishLane measures a publish over a keep-alive connection of
// a running server, as a backend sends it (on Linux the publish lane
// serves it): one request written, its answer read, in turn. allocs/op
// are the server's; the client allocates nothing per publish.
func BenchmarkPublishLane(b *testing.B) {
	c, err := net.Dial("tcp", benchServer(b, resume.NewMemory(resume.MemoryConfig{})))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	request := []byte("POST /v1/publish?channel=bench-0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100))
	answer := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(request); err != nil {
			b.Fatal(err)
		}
		// The answer is small: it comes whole, its body ends in "}\n".
		n := 0
		for n < 2 || string(answer[n-2:n]) != "}\n" {
			k, err := c.Read(answer[n:])
			if err != nil {
				b.Fatal(err)
			}
			n += k
		}
		if string(answer[:12]) != "HTTP/1.1 200" {
			b.Fatalf("answer %q", answer[:n])
		}
	}
}
