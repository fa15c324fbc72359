package hijack

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitFor bounds every wait of these tests.
const waitFor = 10 * time.Second

// TestTakeKeepsReadBytes pins net/http's hijack: every byte it read beyond
// the request, a pipelined next request or the byte its background read
// takes while the handler runs, is in the reader Hijack returns, so that
// Take's pending and what the connection still holds are the next request
// exactly.
func TestTakeKeepsReadBytes(t *testing.T) {
	const first = "GET /first HTTP/1.1\r\nHost: edge\r\n\r\n"
	next := "GET /next HTTP/1.1\r\nHost: edge\r\nX-Fill: " + strings.Repeat("n", 300) + "\r\n\r\n"
	tests := []struct {
		name      string
		pipelined bool // next is sent with first; else once the handler runs
	}{
		{name: "pipelined", pipelined: true},
		{name: "sent while the handler runs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			running, sent := make(chan struct{}), make(chan struct{})
			type result struct {
				pending, rest []byte
				err           error
			}
			got := make(chan result, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !tt.pipelined {
					close(running)
					<-sent
				}
				conn, _, pending, err := Take(w)
				if err != nil {
					got <- result{err: err}
					return
				}
				defer conn.Close()
				rest := make([]byte, len(next)-len(pending))
				conn.SetReadDeadline(time.Now().Add(waitFor))
				_, err = io.ReadFull(conn, rest)
				got <- result{pending, rest, err}
			}))
			defer srv.Close()
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tt.pipelined {
				_, err = io.WriteString(conn, first+next)
			} else {
				io.WriteString(conn, first)
				<-running
				_, err = io.WriteString(conn, next)
				close(sent)
			}
			if err != nil {
				t.Fatal(err)
			}
			r := <-got
			if r.err != nil {
				t.Fatal(r.err)
			}
			if all := string(r.pending) + string(r.rest); all != next {
				t.Fatalf("pending %q and then %q, want the next request %q", r.pending, r.rest, next)
			}
		})
	}
}

// TestTakeHTTP2 pins that an HTTP/2 request cannot be taken, so that the
// callers fall back to net/http.
func TestTakeHTTP2(t *testing.T) {
	got := make(chan error, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _, _, err := Take(w)
		got <- err
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("served over %s, want HTTP/2", resp.Proto)
	}
	if err := <-got; !errors.Is(err, http.ErrNotSupported) {
		t.Fatalf("Take over HTTP/2: %v, want http.ErrNotSupported", err)
	}
}

// headerLines is what Take returns for a handler's CORS headers.
const headerLines = "Access-Control-Allow-Origin: *\r\nVary: Origin\r\n"

// TestAppendJSON checks that the hand-written answer is valid HTTP/1.1
// for net/http's client and for a strict parser, and carries what
// net/http would write for the edge's JSON answers; AppendEncodedJSON's
// too, whose body it writes as it is.
func TestAppendJSON(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		header    string
		body      string
		keepAlive bool
		coding    string // AppendEncodedJSON's; "": AppendJSON
	}{
		{name: "answer kept alive", status: http.StatusOK, header: headerLines, body: `{"messages":[],"cursor":"0-0","gap":false}`, keepAlive: true},
		{name: "answer then close", status: http.StatusOK, body: `{"messages":[]}`},
		{name: "error", status: http.StatusServiceUnavailable, header: headerLines, body: `{"error":{"code":"unavailable","message":"x"}}`},
		{name: "empty body", status: http.StatusOK, keepAlive: true},
		{name: "gzip kept alive", status: http.StatusOK, header: headerLines, body: "\x1f\x8b\x08\x00binary\r\n\r\n\x00", keepAlive: true, coding: "gzip"},
		{name: "gzip then close", status: http.StatusOK, body: "\x1f\x8b", coding: "gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := AppendJSON([]byte("kept"), tt.status, []byte(tt.header), []byte(tt.body), tt.keepAlive)
			wantBody := tt.body + "\n"
			if tt.coding != "" {
				raw = AppendEncodedJSON([]byte("kept"), tt.status, []byte(tt.header), tt.coding, []byte(tt.body), tt.keepAlive)
				wantBody = tt.body
			}
			if !bytes.HasPrefix(raw, []byte("kept")) {
				t.Fatalf("AppendJSON dropped what b held: %q", raw)
			}
			raw = raw[len("kept"):]
			head, body := parseStrict(t, raw)
			if body != wantBody {
				t.Fatalf("strict parser: body %q, want %q", body, wantBody)
			}
			if want := strconv.Itoa(tt.status) + " " + http.StatusText(tt.status); !strings.HasPrefix(head[0], "HTTP/1.1 "+want) {
				t.Fatalf("status line %q, want %q", head[0], want)
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
			if err != nil {
				t.Fatalf("net/http cannot read %q: %v", raw, err)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil || string(b) != wantBody {
				t.Fatalf("net/http read the body %q (%v), want %q", b, err, wantBody)
			}
			want := map[string]string{
				"Content-Type":           "application/json",
				"Cache-Control":          "no-store",
				"X-Content-Type-Options": "nosniff",
			}
			if tt.header != "" {
				want["Access-Control-Allow-Origin"] = "*"
			}
			if tt.coding != "" {
				want["Content-Encoding"] = tt.coding
				if !slices.Contains(resp.Header.Values("Vary"), "Accept-Encoding") {
					t.Errorf("Vary %q, want Accept-Encoding among them", resp.Header.Values("Vary"))
				}
			}
			for k, v := range want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if _, err := http.ParseTime(resp.Header.Get("Date")); err != nil {
				t.Errorf("Date %q: %v", resp.Header.Get("Date"), err)
			}
			if resp.StatusCode != tt.status || resp.Close == tt.keepAlive {
				t.Errorf("net/http read status %d, close %v; want %d, close %v", resp.StatusCode, resp.Close, tt.status, !tt.keepAlive)
			}
		})
	}
}

// TestAppendStreamHead checks that a stream's hand-written head is valid
// HTTP/1.1 whose body runs until the connection closes, for net/http's
// client and for a strict parser.
func TestAppendStreamHead(t *testing.T) {
	const stream = "retry: 2000\n\nid: 1-0\ndata: x\n\n"
	raw := append(AppendStreamHead(nil, []byte("Content-Type: text/event-stream\r\n"+headerLines)), stream...)
	head, body := parseStrict(t, raw)
	if head[0] != "HTTP/1.1 200 OK" || body != stream {
		t.Fatalf("strict parser: %q and body %q", head, body)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != stream {
		t.Fatalf("net/http read the body %q (%v), want %q", b, err, stream)
	}
	if !resp.Close || resp.ContentLength != -1 || len(resp.TransferEncoding) != 0 {
		t.Fatalf("close %v, length %d, encoding %v; want a body that ends with the connection", resp.Close, resp.ContentLength, resp.TransferEncoding)
	}
	if got := resp.Header.Get("Content-Type"); got != "text/event-stream" {
		t.Fatalf("Content-Type %q", got)
	}
}

var (
	statusLine = regexp.MustCompile(`^HTTP/1\.1 [1-5][0-9][0-9] [\t !-~]*$`)
	fieldLine  = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+: [\t !-~]*[!-~]$")
)

// parseStrict reads an HTTP/1.1 response as RFC 9112 writes it, stricter
// than net/http: CRLF line ends only, a status line with a reason, field
// lines of a token, ": " and visible characters, at most one
// Content-Length, which (when present) counts the rest exactly. It
// returns the head's lines and the body.
func parseStrict(t *testing.T, raw []byte) (head []string, body string) {
	t.Helper()
	h, body, ok := strings.Cut(string(raw), "\r\n\r\n")
	if !ok {
		t.Fatalf("no end of head in %q", raw)
	}
	head = strings.Split(h, "\r\n")
	if !statusLine.MatchString(head[0]) {
		t.Fatalf("status line %q", head[0])
	}
	length := -1
	for _, l := range head[1:] {
		if !fieldLine.MatchString(l) {
			t.Fatalf("field line %q", l)
		}
		name, value, _ := strings.Cut(l, ": ")
		if !strings.EqualFold(name, "Content-Length") {
			continue
		}
		n, err := strconv.Atoi(value)
		if length >= 0 || err != nil || n < 0 {
			t.Fatalf("Content-Length %q (after %d)", value, length)
		}
		length = n
	}
	if length >= 0 && length != len(body) {
		t.Fatalf("Content-Length %d, body of %d bytes", length, len(body))
	}
	return head, body
}

func Example() {
	fmt.Printf("%q\n", AppendStreamHead(nil, []byte("Content-Type: text/event-stream\r\n")))
	// Output: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
}
