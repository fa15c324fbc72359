package transports

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   bool
	}{
		{"absent", nil, false},
		{"empty", []string{""}, false},
		{"gzip", []string{"gzip"}, true},
		{"x-gzip", []string{"x-gzip"}, true},
		{"case", []string{"GZip"}, true},
		{"browser", []string{"gzip, deflate, br, zstd"}, true},
		{"gzip later", []string{"br;q=1.0, gzip;q=0.8, *;q=0.1"}, true},
		{"second field", []string{"br", "gzip"}, true},
		{"spaces", []string{"  gzip ; q = 0.5 "}, true},
		{"q=1", []string{"gzip;q=1"}, true},
		{"q=1.000", []string{"gzip;q=1.000"}, true},
		{"q=0.001", []string{"gzip;q=0.001"}, true},
		{"Q upper", []string{"gzip;Q=0.5"}, true},
		{"other parameter", []string{"gzip;level=9"}, true},
		{"q=0", []string{"gzip;q=0"}, false},
		{"q=0.000", []string{"gzip;q=0.000"}, false},
		{"q=0.", []string{"gzip;q=0."}, false},
		{"refused though star allows", []string{"*, gzip;q=0"}, false},
		{"refused in a second field", []string{"*", "gzip;q=0"}, false},
		{"refused then allowed", []string{"gzip;q=0, gzip"}, false},
		{"star", []string{"*"}, true},
		{"star q=0", []string{"*;q=0"}, false},
		{"star refused but gzip named", []string{"gzip, *;q=0"}, true},
		{"identity only", []string{"identity"}, false},
		{"deflate only", []string{"deflate, br"}, false},
		{"gzip as a prefix", []string{"gzipped"}, false},
		{"q over 1", []string{"gzip;q=2"}, false},
		{"q 1.5", []string{"gzip;q=1.5"}, false},
		{"q four decimals", []string{"gzip;q=0.5000"}, false},
		{"q not a number", []string{"gzip;q=high"}, false},
		{"q empty", []string{"gzip;q="}, false},
		{"q negative", []string{"gzip;q=-1"}, false},
		{"q leading dot", []string{"gzip;q=.5"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := acceptsGzip(tt.values); got != tt.want {
				t.Errorf("acceptsGzip(%q) = %v, want %v", tt.values, got, tt.want)
			}
		})
	}
}

// FuzzAcceptsGzip checks that no Accept-Encoding value makes the parser
// panic, and that it allows gzip only where the value names gzip or "*".
func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "*;q=0.5, gzip;q=0", "br, x-gzip;q=1.000", ";;,,q=", "gzip;q=0.0001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := acceptsGzip([]string{v})
		if got && !strings.Contains(strings.ToLower(v), "gzip") && !strings.Contains(v, "*") {
			t.Fatalf("acceptsGzip(%q) allows gzip it does not name", v)
		}
		if !got && strings.TrimSpace(v) == "gzip" {
			t.Fatalf("acceptsGzip(%q) refuses plain gzip", v)
		}
	})
}

// A gzipStream's writes decode, each as soon as it is read, into exactly
// what was written, whatever their sizes (empty, and larger than a
// stateless block, included), and the member ends with a valid checksum.
func TestGzipStreamRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var writes [][]byte
	for _, n := range []int{0, 1, 10, 1000, gzipDict - 1, gzipDict, gzipDict + 1, 5000, 70 << 10, 200 << 10, 3, 0, 1024} {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abcdefgh{}\":,0123456789"[rng.IntN(23)]
		}
		writes = append(writes, b)
	}
	pr, pw := io.Pipe()
	defer pr.Close()
	z := &gzipStream{prefix: []byte("HEAD")}
	go func() {
		for i, w := range writes {
			if i == len(writes)-1 {
				z.finish()
			}
			if _, err := pw.Write(z.append(nil, w)); err != nil {
				return
			}
		}
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	head := make([]byte, 4)
	if _, err := io.ReadFull(br, head); err != nil || string(head) != "HEAD" {
		t.Fatalf("prefix %q, %v", head, err)
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range writes {
		got := make([]byte, len(w))
		if _, err := io.ReadFull(zr, got); err != nil {
			t.Fatalf("write %d (%d bytes): %v", i, len(w), err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("write %d (%d bytes) decoded differently", i, len(w))
		}
	}
	if rest, err := io.ReadAll(zr); err != nil || len(rest) > 0 {
		t.Fatalf("after the last write: %d bytes, %v", len(rest), err)
	}
	if len(z.dict) != 0 {
		t.Errorf("a finished stream keeps a dictionary of %d bytes", len(z.dict))
	}
}

func TestAppendGzip(t *testing.T) {
	for _, n := range []int{0, 1, 100, 100 << 10} {
		p := bytes.Repeat([]byte("{\"a\":1}"), n/7+1)[:n]
		zr, err := gzip.NewReader(bytes.NewReader(appendGzip(nil, p)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("%d bytes: decoded %d, %v", n, len(got), err)
		}
	}
}
