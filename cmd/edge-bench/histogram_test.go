package main

import (
	"encoding/json"
	"math"
	"testing"
)

func TestBucketBounds(t *testing.T) {
	for _, v := range []int64{0, 1, 63, 64, 127, 128, 129, 255, 256, 1000, 1e6, 1e9, 123456789, math.MaxInt64} {
		i := bucketOf(v)
		if i < 0 || i >= nBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of [0, %d)", v, i, nBuckets)
		}
		if hi := bucketMax(i); hi < v {
			t.Errorf("bucketMax(bucketOf(%d)) = %d, below the value", v, hi)
		}
		if i > 0 && bucketMax(i-1) >= v {
			t.Errorf("bucketMax(%d) = %d: %d belongs to the bucket before", i-1, bucketMax(i-1), v)
		}
		if hi := bucketMax(i); v > 0 && float64(hi-v)/float64(v) > 1.0/64 {
			t.Errorf("bucket of %d reaches %d: more than 1/64 above", v, hi)
		}
	}
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		name   string
		values func(record func(int64))
		q      float64
		want   int64
	}{
		{"empty", func(func(int64)) {}, 0.5, 0},
		{"one value", func(r func(int64)) { r(5000) }, 0.999, 5000},
		{"uniform p50", uniform, 0.50, 5_000_000},
		{"uniform p99", uniform, 0.99, 9_900_000},
		{"uniform p99.9", uniform, 0.999, 9_990_000},
		{"uniform p100", uniform, 1, 10_000_000},
		{"outlier beyond p99.9", func(r func(int64)) {
			for range 9999 {
				r(1000)
			}
			r(1e9)
		}, 0.999, 1000},
		{"negative counts as zero", func(r func(int64)) { r(-5) }, 0.5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h histogram
			tt.values(h.Record)
			got := h.Quantile(tt.q)
			if got < tt.want || float64(got-tt.want) > float64(tt.want)/64 {
				t.Errorf("Quantile(%g) = %d, want %d (+1/64)", tt.q, got, tt.want)
			}
		})
	}
}

// uniform records 1, 2, … 10,000 microseconds in nanoseconds.
func uniform(record func(int64)) {
	for v := int64(1); v <= 10_000; v++ {
		record(v * 1000)
	}
}

func TestHistogramMergeAndMax(t *testing.T) {
	var a, b histogram
	a.Record(10)
	a.Record(3_000_000)
	b.Record(7_777_777)
	var m histogram
	m.Merge(&a)
	m.Merge(&b)
	if m.Count() != 3 || m.Max() != 7_777_777 {
		t.Fatalf("merged count %d max %d, want 3 and 7777777", m.Count(), m.Max())
	}
	if got := m.Quantile(1); got != 7_777_777 {
		t.Errorf("p100 = %d, want the exact max", got)
	}
	if got := m.Quantile(0.3); got != 10 {
		t.Errorf("p30 = %d, want 10", got)
	}
}

func TestHistogramJSONMergesExactly(t *testing.T) {
	// Two halves of the uniform values, sent over JSON and merged, give
	// the quantiles of one histogram of all of them.
	var whole, a, b histogram
	uniform(func(v int64) {
		whole.Record(v)
		if v%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	})
	var merged histogram
	for _, h := range []*histogram{&a, &b} {
		line, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(line, &merged); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []float64{0.01, 0.5, 0.99, 0.999, 1} {
		if got, want := merged.Quantile(q), whole.Quantile(q); got != want {
			t.Errorf("Quantile(%g) = %d after the merge, %d in one histogram", q, got, want)
		}
	}
	if merged.Count() != whole.Count() || merged.Max() != whole.Max() {
		t.Errorf("merged count %d max %d, want %d and %d", merged.Count(), merged.Max(), whole.Count(), whole.Max())
	}
}

func TestHistogramJSONRefusesBadInput(t *testing.T) {
	for _, in := range []string{
		`{"buckets":[[3712,1]],"max":5}`,
		`{"buckets":[[1,1]],"max":-1}`,
		`{"buckets":[[1]],"max":"x"}`,
		`[1,2]`,
	} {
		var h histogram
		if err := json.Unmarshal([]byte(in), &h); err == nil {
			t.Errorf("Unmarshal(%s) = nil error", in)
		}
	}
}
