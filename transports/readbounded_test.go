package transports

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readAtMost returns a message of up to limit bytes whole, however the
// reader hands it over, refuses a longer one after reading one byte past
// the limit, and passes other errors on.
func TestReadAtMost(t *testing.T) {
	const limit = 3000 // not a power of two: the last growth is clipped to it
	msg := func(n int) string { return strings.Repeat("m", n) }
	boom := errors.New("boom")
	tests := []struct {
		name    string
		r       io.Reader
		limit   int
		want    string
		wantErr error
	}{
		{name: "empty", r: strings.NewReader(""), limit: limit, want: ""},
		{name: "short", r: strings.NewReader("hi"), limit: limit, want: "hi"},
		{name: "one buffer", r: strings.NewReader(msg(wsReadBuffer)), limit: limit, want: msg(wsReadBuffer)},
		{name: "grown", r: strings.NewReader(msg(2000)), limit: limit, want: msg(2000)},
		{name: "exactly the limit", r: strings.NewReader(msg(limit)), limit: limit, want: msg(limit)},
		{name: "exactly the limit byte by byte", r: iotest.OneByteReader(strings.NewReader(msg(limit))), limit: limit, want: msg(limit)},
		{name: "exactly the limit with EOF on the data", r: iotest.DataErrReader(strings.NewReader(msg(limit))), limit: limit, want: msg(limit)},
		{name: "one over the limit", r: strings.NewReader(msg(limit + 1)), limit: limit, wantErr: errTooBig},
		{name: "far over the limit", r: strings.NewReader(msg(100 * limit)), limit: limit, wantErr: errTooBig},
		{name: "over the limit byte by byte", r: iotest.OneByteReader(strings.NewReader(msg(limit + 1))), limit: limit, wantErr: errTooBig},
		{name: "zero limit, empty", r: strings.NewReader(""), limit: 0, want: ""},
		{name: "zero limit, one byte", r: strings.NewReader("x"), limit: 0, wantErr: errTooBig},
		{name: "error midway", r: io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)), limit: limit, wantErr: boom},
		{name: "error at the limit", r: io.MultiReader(strings.NewReader(msg(limit)), iotest.ErrReader(boom)), limit: limit, wantErr: boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAtMost(tt.r, tt.limit, wsReadBuffer, nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if err == nil && string(got) != tt.want {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
			if cap(got) > max(tt.limit, wsReadBuffer) {
				t.Fatalf("buffer of %d bytes for a limit of %d", cap(got), tt.limit)
			}
		})
	}
	t.Run("reads one byte past the limit at most", func(t *testing.T) {
		r := bytes.NewReader([]byte(msg(10 * limit)))
		if _, err := readAtMost(r, limit, wsReadBuffer, nil); !errors.Is(err, errTooBig) {
			t.Fatalf("error %v, want errTooBig", err)
		}
		if read := 10*limit - r.Len(); read > limit+1 {
			t.Fatalf("read %d bytes for a limit of %d", read, limit)
		}
	})
}
