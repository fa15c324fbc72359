package hijack

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// A publish as backends' HTTP clients write it.
const plainPublish = "POST /v1/publish?channel=news&event=price HTTP/1.1\r\n" +
	"Host: 127.0.0.1:8080\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 5\r\n" +
	"Authorization: Bearer abc.def\r\nAccept-Encoding: gzip\r\n\r\nhello"

func TestParseRequestHead(t *testing.T) {
	headLen := strings.Index(plainPublish, "\r\n\r\n") + 4
	tests := []struct {
		name   string
		in     string
		want   RequestHead
		n      int
		refuse bool
	}{
		{
			name: "publish", in: plainPublish, n: headLen,
			want: RequestHead{
				Method: "POST", Target: "/v1/publish?channel=news&event=price", Host: "127.0.0.1:8080", ContentLength: 5,
				Header: http.Header{
					"User-Agent": {"Go-http-client/1.1"}, "Content-Length": {"5"},
					"Authorization": {"Bearer abc.def"}, "Accept-Encoding": {"gzip"},
				},
			},
		},
		{
			name: "names canonical, values trimmed, repeated fields kept, close",
			in:   "POST /p HTTP/1.1\r\nhost: edge\r\nx-request-id:  a-1 \t\r\nX-Tag: 1\r\nx-tag: 2\r\nconnection: Close\r\n\r\n",
			n:    len("POST /p HTTP/1.1\r\nhost: edge\r\nx-request-id:  a-1 \t\r\nX-Tag: 1\r\nx-tag: 2\r\nconnection: Close\r\n\r\n"),
			want: RequestHead{
				Method: "POST", Target: "/p", Host: "edge", ContentLength: -1, Close: true,
				Header: http.Header{"X-Request-Id": {"a-1"}, "X-Tag": {"1", "2"}, "Connection": {"Close"}},
			},
		},
		{name: "incomplete", in: "POST /v1/publish HTTP/1.1\r\nHost: edge\r\n"},
		{name: "incomplete request line", in: "POST /v1/pub"},
		{name: "HTTP/1.0", in: "POST /p HTTP/1.0\r\nHost: edge\r\n\r\n", refuse: true},
		{name: "HTTP/2 preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", refuse: true},
		{name: "absolute target", in: "POST http://edge/p HTTP/1.1\r\nHost: edge\r\n\r\n", refuse: true},
		{name: "lower-case method", in: "post /p HTTP/1.1\r\nHost: edge\r\n\r\n", refuse: true},
		{name: "bad escape", in: "POST /p?c=%zz HTTP/1.1\r\nHost: edge\r\n\r\n", refuse: true},
		{name: "fragment", in: "POST /p#x HTTP/1.1\r\nHost: edge\r\n\r\n", refuse: true},
		{name: "no host", in: "POST /p HTTP/1.1\r\nContent-Length: 0\r\n\r\n", refuse: true},
		{name: "two hosts", in: "POST /p HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", refuse: true},
		{name: "empty host", in: "POST /p HTTP/1.1\r\nHost:\r\n\r\n", refuse: true},
		{name: "host with a path", in: "POST /p HTTP/1.1\r\nHost: a/b\r\n\r\n", refuse: true},
		{name: "two lengths", in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", refuse: true},
		{name: "signed length", in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", refuse: true},
		{name: "length list", in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", refuse: true},
		{name: "huge length", in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456\r\n\r\n", refuse: true},
		{name: "chunked", in: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", refuse: true},
		{name: "expect", in: "POST /p HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", refuse: true},
		{name: "upgrade", in: "POST /p HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nUpgrade: h2c\r\n\r\n", refuse: true},
		{name: "connection upgrade", in: "POST /p HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n", refuse: true},
		{name: "two connections", in: "POST /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\nConnection: close\r\n\r\n", refuse: true},
		{name: "pragma", in: "POST /p HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n", refuse: true},
		{name: "folded line", in: "POST /p HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n", refuse: true},
		{name: "space before colon", in: "POST /p HTTP/1.1\r\nHost : a\r\n\r\n", refuse: true},
		{name: "underscore in name", in: "POST /p HTTP/1.1\r\nHost: a\r\nX_A: 1\r\n\r\n", refuse: true},
		{name: "control in value", in: "POST /p HTTP/1.1\r\nHost: a\r\nX-A: 1\x00\r\n\r\n", refuse: true},
		{name: "non-ASCII value", in: "POST /p HTTP/1.1\r\nHost: a\r\nX-A: \xc3\xa9\r\n\r\n", refuse: true},
		{name: "bare LF", in: "POST /p HTTP/1.1\nHost: a\n\n", refuse: true},
		{name: "bare CR", in: "POST /p HTTP/1.1\r\nHost: a\rX-A: 1\r\n\r\n", refuse: true},
		{name: "too many fields", in: "POST /p HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: 1\r\n", 64) + "\r\n", refuse: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n, err := ParseRequestHead([]byte(tt.in))
			if tt.refuse {
				if !errors.Is(err, ErrNotPlain) {
					t.Fatalf("ParseRequestHead = %d, %v; want ErrNotPlain", n, err)
				}
				return
			}
			if err != nil || n != tt.n {
				t.Fatalf("ParseRequestHead = %d, %v; want %d, nil", n, err, tt.n)
			}
			if n == 0 {
				return
			}
			if !reflect.DeepEqual(h, tt.want) {
				t.Errorf("head = %+v\nwant   %+v", h, tt.want)
			}
			checkAsNetHTTP(t, []byte(tt.in), h, n)
		})
	}
}

// checkAsNetHTTP fails unless net/http reads the head of b[:n] as h.
func checkAsNetHTTP(t *testing.T, b []byte, h RequestHead, n int) {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:n])))
	if err != nil {
		t.Fatalf("accepted a head net/http refuses (%v): %q", err, b[:n])
	}
	header := r.Header
	if len(header) == 0 {
		header = http.Header{}
	}
	wantLength := h.ContentLength
	if wantLength < 0 {
		wantLength = 0 // a request without Content-Length has no body
	}
	if r.Method != h.Method || r.RequestURI != h.Target || r.Host != h.Host || r.Close != h.Close ||
		r.ContentLength != wantLength || !reflect.DeepEqual(header, h.Header) {
		t.Fatalf("net/http reads %q as %s %s host %q close %v length %d %v;\nParseRequestHead as %+v",
			b[:n], r.Method, r.RequestURI, r.Host, r.Close, r.ContentLength, header, h)
	}
}

// FuzzRequestHead holds ParseRequestHead to its promise: a head it
// accepts, net/http reads the same way, and its length is within the
// input.
func FuzzRequestHead(f *testing.F) {
	f.Add([]byte(plainPublish))
	f.Add([]byte("POST /p?a=%41 HTTP/1.1\r\nHost: [::1]:80\r\nConnection: keep-alive\r\nX-A:\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\ncontent-length: 007\r\n\r\nxyz"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseRequestHead(b)
		if err != nil || n == 0 {
			return
		}
		if n > len(b) {
			t.Fatalf("head of %d bytes in %d", n, len(b))
		}
		checkAsNetHTTP(t, b, h, n)
	})
}

// BenchmarkParseRequestHead measures the head of a typical publish.
func BenchmarkParseRequestHead(b *testing.B) {
	in := []byte(plainPublish)
	b.ReportAllocs()
	for b.Loop() {
		if _, n, err := ParseRequestHead(in); err != nil || n == 0 {
			b.Fatal(n, err)
		}
	}
}
