package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
)

// Histogram layout: values below 2*subCount have a bucket each; above,
// every power of two is split into subCount buckets, so a bucket's width is
// at most 1/subCount of its lower bound (HdrHistogram's idea with fixed
// memory).
const (
	subBits  = 6
	subCount = 1 << subBits
	nBuckets = (64 - subBits) * subCount
)

// histogram counts non-negative int64 values (nanoseconds here) with a
// relative error below 1/64. The zero value is empty and ready; Record is
// safe for concurrent use. It takes about 29 KiB whatever it holds.
type histogram struct {
	counts [nBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

// bucketOf returns the bucket of v (v ≥ 0).
func bucketOf(v int64) int {
	if v < 2*subCount {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits - 1 // v>>e is in [subCount, 2*subCount)
	return (e+1)*subCount + int(uint64(v)>>e) - subCount
}

// bucketMax returns the largest value that falls in bucket i.
func bucketMax(i int) int64 {
	if i < 2*subCount {
		return int64(i)
	}
	e := i/subCount - 1
	mant := int64(i%subCount + subCount)
	// For the last bucket (mant+1)<<e is 1<<63, which wraps so that the
	// result is MaxInt64.
	return (mant+1)<<e - 1
}

// Record adds one value; negative values count as 0.
func (h *histogram) Record(v int64) {
	v = max(v, 0)
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Merge adds every count of o to h.
func (h *histogram) Merge(o *histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(o.total.Load())
	for {
		m, om := h.max.Load(), o.max.Load()
		if om <= m || h.max.CompareAndSwap(m, om) {
			return
		}
	}
}

// Count returns how many values were recorded.
func (h *histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest value recorded, exactly (0 when empty).
func (h *histogram) Max() int64 { return h.max.Load() }

// Quantile returns the value below or at which a fraction q (0 < q ≤ 1) of
// the recorded values fall: the upper bound of the bucket that holds the
// value of that rank, never more than Max. It returns 0 when empty.
func (h *histogram) Quantile(q float64) int64 {
	total := h.total.Load()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	rank = min(max(rank, 1), total)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(bucketMax(i), h.Max())
		}
	}
	return h.Max()
}

// histogramJSON is a histogram on the wire between a worker process and
// its parent: the non-empty buckets as [index, count] pairs and the exact
// maximum, so that merged quantiles are those of one histogram of every
// value.
type histogramJSON struct {
	Buckets [][2]uint64 `json:"buckets"`
	Max     int64       `json:"max"`
}

// MarshalJSON encodes h as a histogramJSON.
func (h *histogram) MarshalJSON() ([]byte, error) {
	w := histogramJSON{Buckets: [][2]uint64{}, Max: h.Max()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			w.Buckets = append(w.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON adds the counts of a histogramJSON to h, refusing bucket
// indexes out of range and a negative maximum.
func (h *histogram) UnmarshalJSON(b []byte) error {
	var w histogramJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.Max < 0 {
		return fmt.Errorf("histogram: negative max %d", w.Max)
	}
	for _, bc := range w.Buckets {
		if bc[0] >= nBuckets {
			return fmt.Errorf("histogram: bucket %d out of range", bc[0])
		}
	}
	var o histogram
	for _, bc := range w.Buckets {
		o.counts[bc[0]].Add(bc[1])
		o.total.Add(bc[1])
	}
	o.max.Store(w.Max)
	h.Merge(&o)
	return nil
}
