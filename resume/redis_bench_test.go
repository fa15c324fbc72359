package resume_test

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
)

// BenchmarkRedisPublish measures Redis.Publish with 64 concurrent
// publishers per CPU on one channel, as the load tool drives the HTTP
// publish endpoint, against a redis-server without persistence (so the
// disk does not set the pace).
func BenchmarkRedisPublish(b *testing.B) {
	r := benchRedis(b)
	payload := make([]byte, 100)
	b.ReportAllocs()
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Publish(context.Background(), "bench", "", payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRedisPublishTraced is BenchmarkRedisPublish with a sampled
// span in every publish's context: the cost of the traceparent option and
// the tp attribute of the live payload (no span is started here).
func BenchmarkRedisPublishTraced(b *testing.B) {
	r := benchRedis(b)
	payload := make([]byte, 100)
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35}, SpanID: trace.SpanID{0x00, 0xf0, 0x67}, TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	b.ReportAllocs()
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Publish(ctx, "bench", "", payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRedisPublishOnce is BenchmarkRedisPublish with a new
// idempotency key on every publish: the cost of the key's check, its SET
// and the array answer.
func BenchmarkRedisPublishOnce(b *testing.B) {
	r := benchRedis(b)
	payload := make([]byte, 100)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := strconv.FormatInt(next.Add(1), 36)
			if _, _, err := r.PublishOnce(context.Background(), "bench", "", payload, key); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchRedis returns a running Redis store on a redis-server of its own
// without persistence (so the disk does not set the pace), stopped when
// the benchmark ends.
func benchRedis(b *testing.B) *resume.Redis {
	b.Helper()
	srv := redistest.Start(b, "--appendonly", "no")
	r, err := resume.NewRedis(resume.RedisConfig{URLs: []string{srv.URL()}}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return r
}
