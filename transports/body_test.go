package transports

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/edgeworks/edge/edge"
)

// stalledBody delivers its bytes, then fails as a read past its deadline
// does: a client that announced more and stopped sending.
type stalledBody struct{ r io.Reader }

func (b *stalledBody) Read(p []byte) (int, error) {
	if n, _ := b.r.Read(p); n > 0 {
		return n, nil
	}
	return 0, os.ErrDeadlineExceeded
}

func (b *stalledBody) Close() error { return nil }

// A publish body is held in memory as it arrives, not as announced: a
// client that announces 16 MiB and sends 10 bytes (then stalls until its
// deadline) costs the edge a few KiB, not 16 MiB.
func TestReadPayloadAllocatesWhatArrives(t *testing.T) {
	const max = 16 << 20
	for _, tc := range []struct {
		name     string
		announce int64 // Content-Length; -1: chunked
		sent     int   // bytes that arrive before the stall
		bound    int   // bytes a read may allocate
	}{
		{"16 MiB announced, 10 bytes sent", max, 10, firstBodyChunk},
		{"16 MiB announced, nothing sent", max, 0, firstBodyChunk},
		{"16 MiB announced, 100 KiB sent", max, 100 << 10, 4 * (100 << 10)},
		{"chunked, 10 bytes sent", -1, 10, firstBodyChunk},
		{"chunked, 100 KiB sent", -1, 100 << 10, 4 * (100 << 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent := bytes.Repeat([]byte("x"), tc.sent)
			read := func() error {
				r := httptest.NewRequest(http.MethodPost, "/v1/publish?channel=a", nil)
				r.ContentLength = tc.announce
				r.Body = &stalledBody{bytes.NewReader(sent)}
				_, err := readPayload(httptest.NewRecorder(), r, max, time.Second)
				return err
			}
			if err := read(); err == nil {
				t.Fatal("a stalled body was read")
			}
			const runs = 20
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for range runs {
				read()
			}
			runtime.ReadMemStats(&after)
			if err := read(); !errors.Is(err, edge.ErrRequestTimeout) {
				t.Errorf("err %v, want a request timeout", err)
			}
			// The request, the recorder and the error come on top of the
			// body's buffers.
			if per := int(after.TotalAlloc-before.TotalAlloc) / runs; per > tc.bound+16<<10 {
				t.Fatalf("%d bytes allocated per stalled body of %d bytes, want at most %d and a little", per, tc.sent, tc.bound)
			}
		})
	}
}

// readBody returns the body whole, however the reads split it, in a
// buffer of exactly its size when the size is known; it says when a body
// is shorter than announced and lets an unknown-length body go one byte
// past max, for a bounding reader to refuse.
func TestReadBody(t *testing.T) {
	big := strings.Repeat("0123456789", 3000)
	for _, tc := range []struct {
		name    string
		body    io.Reader
		size    int64
		max     int
		want    string
		wantCap int // 0: any
		wantErr error
	}{
		{"empty", strings.NewReader(""), 0, 100, "", 0, nil},
		{"small, known size", strings.NewReader("hello"), 5, 100, "hello", 5, nil},
		{"large, known size", strings.NewReader(big), int64(len(big)), len(big), big, len(big), nil},
		{"large, one byte a read", iotest.OneByteReader(strings.NewReader(big)), int64(len(big)), len(big), big, len(big), nil},
		{"large, unknown size", iotest.HalfReader(strings.NewReader(big)), -1, len(big), big, 0, nil},
		{"unknown size, over max by one", strings.NewReader("123456"), -1, 5, "123456", 0, nil},
		{"shorter than announced", strings.NewReader("abc"), 10, 100, "", 0, io.ErrUnexpectedEOF},
		{"error while reading", iotest.TimeoutReader(strings.NewReader(big)), -1, len(big), "", 0, iotest.ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.size >= 0 {
				body = &knownLength{r: io.LimitReader(body, tc.size), left: tc.size}
			}
			w := &deadlineRecorder{}
			got, err := readBody(body, tc.size, tc.max, http.NewResponseController(w), time.Second)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if string(got) != tc.want || got == nil {
				t.Fatalf("got %d bytes (nil %v), want %d", len(got), got == nil, len(tc.want))
			}
			if tc.wantCap > 0 && cap(got) != tc.wantCap {
				t.Errorf("cap %d, want exactly the size %d", cap(got), tc.wantCap)
			}
			if len(tc.want) > 0 && w.deadlines == 0 {
				t.Error("no deadline set before reading")
			}
		})
	}
}

// deadlineRecorder counts the read deadlines set through it.
type deadlineRecorder struct {
	httptest.ResponseRecorder
	deadlines int
}

func (w *deadlineRecorder) SetReadDeadline(time.Time) error {
	w.deadlines++
	return nil
}

// knownLength is a body of known length as net/http reads it: io.EOF
// after its left bytes, io.ErrUnexpectedEOF when the client sent fewer.
type knownLength struct {
	r    io.Reader
	left int64
}

func (b *knownLength) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if err == io.EOF && b.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
