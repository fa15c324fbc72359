package main

import (
	"sync/atomic"
	"time"
)

// nShards spreads the counters of the receivers over several cache lines
// and histograms, so receivers on different cores rarely share one.
const nShards = 16

// recorder collects what all receivers of a run observe. The zero value is
// ready; it is safe for concurrent use.
type recorder struct {
	shards [nShards]shard
}

// shard is the part of a recorder that some receivers write to.
type shard struct {
	latency   histogram    // publish→deliver, nanoseconds, first deliveries only
	steady    histogram    // latency of those made before the receiver's first connection loss
	delivered atomic.Int64 // first deliveries
	last      atomic.Int64 // unix nanoseconds of the latest first delivery
	_         [64]byte     // keep neighbouring shards' counters apart
}

// shard returns the shard for receiver i.
func (r *recorder) shard(i int) *shard { return &r.shards[i%nShards] }

// deliver records a first delivery, received at now (unix nanoseconds),
// of a message sent at sent; undisturbed says that the receiver's
// connection never ended so far.
func (s *shard) deliver(sent, now int64, undisturbed bool) {
	s.latency.Record(now - sent)
	if undisturbed {
		s.steady.Record(now - sent)
	}
	s.delivered.Add(1)
	if s.last.Load() < now {
		s.last.Store(now) // racy maximum: close enough for a rate
	}
}

// delivered returns the first deliveries so far.
func (r *recorder) delivered() int64 {
	var n int64
	for i := range r.shards {
		n += r.shards[i].delivered.Load()
	}
	return n
}

// lastDelivery returns the time of the latest first delivery (zero when
// none).
func (r *recorder) lastDelivery() time.Time {
	var last int64
	for i := range r.shards {
		last = max(last, r.shards[i].last.Load())
	}
	if last == 0 {
		return time.Time{}
	}
	return time.Unix(0, last)
}

// latency returns the merged latency histogram.
func (r *recorder) latency() *histogram {
	h := new(histogram)
	for i := range r.shards {
		h.Merge(&r.shards[i].latency)
	}
	return h
}

// steadyLatency returns the merged latency histogram of deliveries made
// before their receiver's first connection loss.
func (r *recorder) steadyLatency() *histogram {
	h := new(histogram)
	for i := range r.shards {
		h.Merge(&r.shards[i].steady)
	}
	return h
}

// waitDelivered returns when want first deliveries were recorded, after
// timeout, or when done is closed, whichever comes first.
func (r *recorder) waitDelivered(done <-chan struct{}, want int64, timeout time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for r.delivered() < want {
		select {
		case <-done:
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// waitQuiet returns once no first delivery was recorded for quiet, after
// timeout, or when done is closed, whichever comes first. It drains a
// run whose deliveries cannot be counted beforehand (--conflate).
func (r *recorder) waitQuiet(done <-chan struct{}, quiet, timeout time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	last, since := r.delivered(), time.Now()
	for time.Since(since) < quiet {
		select {
		case <-done:
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
		if n := r.delivered(); n != last {
			last, since = n, time.Now()
		}
	}
}
