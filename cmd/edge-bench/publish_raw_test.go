package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scriptServer is a loopback HTTP/1.1 server, written by hand, that
// answers every publish it reads with the same bytes: enough to drive
// rawPublisher into each of its paths.
type scriptServer struct {
	addr     string
	answer   string        // written after each request
	closeEnd bool          // close the connection after answering
	hang     bool          // read the request, never answer
	received chan struct{} // a token per request read, while there is room
	conns    atomic.Int64  // connections accepted

	mu   sync.Mutex // guards reqs
	reqs []string   // each request's summary: "POST URI host=… len=… ua=…: body"
}

// startScriptServer starts s on a free loopback port until the test ends.
func startScriptServer(t *testing.T, s *scriptServer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.received = make(chan struct{}, 1000)
	done := make(chan struct{})
	var mu sync.Mutex // guards open
	var open []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			mu.Lock()
			open = append(open, conn)
			mu.Unlock()
			wg.Go(func() { s.serve(conn, done) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		close(done)
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// serve reads requests from conn and answers them as s says.
func (s *scriptServer) serve(conn net.Conn, done <-chan struct{}) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		req, err := http.ReadRequest(r)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, fmt.Sprintf("%s %s host=%s len=%d ua=%s ct=%q: %s",
			req.Method, req.RequestURI, req.Host, req.ContentLength, req.UserAgent(), req.Header.Get("Content-Type"), body))
		s.mu.Unlock()
		select {
		case s.received <- struct{}{}:
		default:
		}
		if s.hang {
			<-done
			return
		}
		if _, err := io.WriteString(conn, s.answer); err != nil || s.closeEnd {
			return
		}
	}
}

// requests returns the summaries of the requests s read.
func (s *scriptServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reqs...)
}

// newTestPublisher returns the publisher of edge-bench run with args
// against the server at addr, and closes it when the test ends.
func newTestPublisher(t *testing.T, addr string, args ...string) *publisher {
	t.Helper()
	p, err := newPublisher(parse(t, "run", append([]string{"--url", "http://" + addr}, args...)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	if p.nodes[0].raw == nil {
		t.Fatal("no raw publisher for http")
	}
	return p
}

func TestRawPublish(t *testing.T) {
	long := strings.Repeat("e", 300)
	manyLines := strings.Repeat("X-A: b\r\n", maxAnswerLines)
	bigHeader := strings.Repeat("X-Big: "+strings.Repeat("h", 4000)+"\r\n", 5)
	tests := []struct {
		name      string
		target    string
		answer    string
		closeEnd  bool // the server closes the connection after answering
		hang      bool // the server never answers
		publishes int
		wantErr   string // the whole error, if wantIs is nil
		wantIs    error
		wantConns int64
	}{
		{name: "Content-Length, kept alive", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", publishes: 20, wantConns: 1},
		{name: "chunked, kept alive", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n", publishes: 5, wantConns: 1},
		{name: "Nchan's 201", target: targetNchan, answer: "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", publishes: 3, wantConns: 1},
		{name: "Nchan's 202", target: targetNchan, answer: "HTTP/1.1 202 Accepted\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n", publishes: 3, wantConns: 1},
		{name: "Connection: close", answer: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", publishes: 3, wantConns: 3},
		{name: "HTTP/1.0", answer: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", publishes: 3, wantConns: 3},
		{name: "body up to the end", answer: "HTTP/1.1 200 OK\r\n\r\nok", closeEnd: true, publishes: 3, wantConns: 3},
		{
			name: "error status", answer: "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 300\r\n\r\n" + long, publishes: 2, wantConns: 2,
			wantErr: "POST /v1/publish: 503 Service Unavailable: " + long[:200] + "…",
		},
		{
			name: "status Nchan does not accept", target: targetNchan, answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhm", publishes: 2, wantConns: 2,
			wantErr: "POST /pub/bench-0: 200 OK: hm",
		},
		{name: "malformed status line", answer: "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok", publishes: 2, wantIs: errBadAnswer, wantConns: 2},
		{name: "too many header lines", answer: "HTTP/1.1 200 OK\r\n" + manyLines + "Content-Length: 2\r\n\r\nok", publishes: 2, wantIs: errBadAnswer, wantConns: 2},
		{name: "header block too large", answer: "HTTP/1.1 200 OK\r\n" + bigHeader + "Content-Length: 2\r\n\r\nok", publishes: 2, wantIs: errBadAnswer, wantConns: 2},
		{name: "body too large", answer: "HTTP/1.1 200 OK\r\nContent-Length: 65537\r\n\r\n", publishes: 2, wantIs: errBadAnswer, wantConns: 2},
		{name: "closes mid-body", answer: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", closeEnd: true, publishes: 2, wantIs: io.ErrUnexpectedEOF, wantConns: 2},
		{name: "closes mid-header", answer: "HTTP/1.1 200 OK\r\nContent-Len", closeEnd: true, publishes: 2, wantIs: io.ErrUnexpectedEOF, wantConns: 2},
		{name: "never answers", hang: true, publishes: 2, wantIs: os.ErrDeadlineExceeded, wantConns: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &scriptServer{answer: tt.answer, closeEnd: tt.closeEnd, hang: tt.hang}
			startScriptServer(t, s)
			p := newTestPublisher(t, s.addr, "--publishers", "1", "--target", cmp.Or(tt.target, targetEdge))
			p.nodes[0].raw.timeout = 200 * time.Millisecond
			var want []string
			for i := range tt.publishes {
				payload := appendPayload(nil, uint64(i), time.Now().UnixNano(), 100)
				path := "/v1/publish?channel=bench-0"
				if tt.target == targetNchan {
					path = "/pub/bench-0"
				}
				want = append(want, fmt.Sprintf("POST %s host=%s len=100 ua=edge-bench ct=\"\": %s", path, s.addr, payload))
				err := p.publish(t.Context(), 0, 0, 0, nil, payload)
				switch {
				case tt.wantIs != nil:
					if !errors.Is(err, tt.wantIs) {
						t.Errorf("publish %d: %v, want %v", i, err, tt.wantIs)
					}
				case tt.wantErr != "":
					if err == nil || err.Error() != tt.wantErr {
						t.Errorf("publish %d: %v, want %s", i, err, tt.wantErr)
					}
				case err != nil:
					t.Errorf("publish %d: %v", i, err)
				}
			}
			for range tt.publishes { // a server that never answers may still be reading
				select {
				case <-s.received:
				case <-time.After(5 * time.Second):
					t.Fatal("the server did not read every request")
				}
			}
			if got := s.conns.Load(); got != tt.wantConns {
				t.Errorf("%d publishes over %d connections, want %d", tt.publishes, got, tt.wantConns)
			}
			if got := s.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("the server read\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// A publish returns when its context ends, however long its timeout.
func TestRawPublishCancel(t *testing.T) {
	s := &scriptServer{hang: true}
	startScriptServer(t, s)
	p := newTestPublisher(t, s.addr, "--publishers", "1")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- p.publish(ctx, 0, 0, 0, nil, appendPayload(nil, 0, 0, 100)) }()
	<-s.received
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("publish: %v, want %v", err, context.Canceled)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publish did not return 5 s after its context ended")
	}
}

// Concurrent publishes share at most --publishers connections, and a
// connection idle too long is not used again.
func TestRawPublishPool(t *testing.T) {
	s := &scriptServer{answer: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"}
	startScriptServer(t, s)
	p := newTestPublisher(t, s.addr, "--publishers", "3")
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				if err := p.publish(t.Context(), 0, 0, 0, nil, appendPayload(nil, uint64(g*25+i), 0, 100)); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n, conns := failed.Load(), s.conns.Load(); n != 0 || conns < 1 || conns > 3 {
		t.Fatalf("%d failed publishes over %d connections, want none over 1 to 3", n, conns)
	}
	before := s.conns.Load()
	p.nodes[0].raw.mu.Lock()
	for _, c := range p.nodes[0].raw.idle {
		c.idleSince = c.idleSince.Add(-maxIdleConn - time.Second)
	}
	p.nodes[0].raw.mu.Unlock()
	if err := p.publish(t.Context(), 0, 0, 0, nil, appendPayload(nil, 200, 0, 100)); err != nil {
		t.Fatal(err)
	}
	if got := s.conns.Load(); got != before+1 {
		t.Errorf("after idling: %d connections, want a new one (%d)", got, before+1)
	}
	p.close()
	p.nodes[0].raw.mu.Lock()
	defer p.nodes[0].raw.mu.Unlock()
	if len(p.nodes[0].raw.idle) != 0 {
		t.Errorf("%d idle connections after close", len(p.nodes[0].raw.idle))
	}
}

// answerCases are answers readAnswer reads, or refuses; they seed
// FuzzReadAnswer too.
var answerCases = []struct {
	name   string
	in     string
	status int
	body   string
	close  bool
	err    error // matched with errors.Is
}{
	{"Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", false, nil},
	{"bare LF lines", "HTTP/1.1 200 OK\nContent-Length: 5\n\nhello", 200, "hello", false, nil},
	{"no reason phrase", "HTTP/1.1 200\r\ncontent-length: 0\r\n\r\n", 200, "", false, nil},
	{"repeated equal lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", 200, "ok", false, nil},
	{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n3 ; ext\r\nabc\r\n0\r\nX: y\r\n\r\n", 200, "0123456789abc", false, nil},
	{"chunked and a length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 200, "ok", true, nil},
	{"Connection: close", "HTTP/1.1 503 Busy\r\nConnection: keep-alive, Close\r\nContent-Length: 4\r\n\r\nbusy", 503, "busy", true, nil},
	{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, "", true, nil},
	{"to the end", "HTTP/1.1 200 OK\r\n\r\nuntil the end", 200, "until the end", true, nil},
	{"204 ignores its length", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 204, "", false, nil},
	{"empty", "", 0, "", false, io.ErrUnexpectedEOF},
	{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", 0, "", false, errBadAnswer},
	{"HTTP/2", "HTTP/2 200\r\n\r\n", 0, "", false, errBadAnswer},
	{"short status", "HTTP/1.1 20\r\n\r\n", 0, "", false, errBadAnswer},
	{"status glued to reason", "HTTP/1.1 200OK\r\n\r\n", 0, "", false, errBadAnswer},
	{"informational", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 100, "", false, errBadAnswer},
	{"header without colon", "HTTP/1.1 200 OK\r\nContent-Length 2\r\n\r\nok", 200, "", false, errBadAnswer},
	{"folded header", "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", 200, "", false, errBadAnswer},
	{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 200, "", false, errBadAnswer},
	{"signed length", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx", 200, "", false, errBadAnswer},
	{"huge length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", 200, "", false, errBadAnswer},
	{"conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", 200, "", false, errBadAnswer},
	{"other coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 200, "", false, errBadAnswer},
	{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 200, "", false, errBadAnswer},
	{"chunk size too long", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n000000001\r\nx\r\n0\r\n\r\n", 200, "", false, errBadAnswer},
	{"chunk without its end", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n", 200, "ok", false, errBadAnswer},
	{"chunks beyond the body bound", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("8000\r\n"+strings.Repeat("c", 0x8000)+"\r\n", 2) + "1\r\nc\r\n0\r\n\r\n", 200, "", false, errBadAnswer},
	{"chunk framing beyond its bound", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1;"+strings.Repeat("e", 3000)+"\r\nc\r\n", 6) + "0\r\n\r\n", 200, "", false, errBadAnswer},
	{"too many trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + strings.Repeat("X: y\r\n", maxAnswerLines) + "\r\n", 200, "", false, errBadAnswer},
	{"line longer than the buffer", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("l", answerBufferSize) + "\r\n\r\n", 200, "", false, errBadAnswer},
	{"body to the end beyond its bound", "HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("b", maxAnswerBody+1), 200, "", true, errBadAnswer},
	{"length beyond the body bound", "HTTP/1.1 200 OK\r\nContent-Length: 65537\r\n\r\n", 200, "", false, errBadAnswer},
	{"ends mid-body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", 200, "", false, io.ErrUnexpectedEOF},
	{"ends mid-chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 200, "", false, io.ErrUnexpectedEOF},
	{"ends before the last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n", 200, "", false, io.ErrUnexpectedEOF},
}

func TestReadAnswer(t *testing.T) {
	for _, tt := range answerCases {
		t.Run(tt.name, func(t *testing.T) {
			var a answer
			err := readAnswer(bufio.NewReaderSize(strings.NewReader(tt.in), answerBufferSize), &a)
			if !errors.Is(err, tt.err) || tt.err == nil && err != nil {
				t.Fatalf("readAnswer: %v, want %v", err, tt.err)
			}
			if a.status != tt.status {
				t.Errorf("status %d, want %d", a.status, tt.status)
			}
			if err == nil && (string(a.body) != tt.body || a.close != tt.close) {
				t.Errorf("body %q close %v, want %q %v", a.body, a.close, tt.body, tt.close)
			}
		})
	}
}

// pieceReader returns data at most step bytes per Read and counts what it
// returned.
type pieceReader struct {
	data []byte
	step int
	read int
}

func (r *pieceReader) Read(b []byte) (int, error) {
	if r.read == len(r.data) {
		return 0, io.EOF
	}
	n := copy(b[:min(len(b), r.step)], r.data[r.read:])
	r.read += n
	return n, nil
}

// readAnswer never panics, never reads more than its bounds allow, never
// keeps a body beyond maxAnswerBody, and reads the same whether its input
// arrives at once or in pieces.
func FuzzReadAnswer(f *testing.F) {
	for _, tt := range answerCases {
		f.Add([]byte(tt.in), uint8(0))
		f.Add([]byte(tt.in), uint8(7))
	}
	// What the edge and Nchan answer.
	f.Add([]byte("HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 38\r\nContent-Type: application/json\r\nX-Request-Id: TKN275SX-1\r\nDate: Mon, 07 Dec 2026 09:44:35 GMT\r\n\r\n{\"channel\":\"bench-0\",\"id\":\"1-1\"}\n"), uint8(3))
	f.Add([]byte("HTTP/1.1 201 Created\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 09:44:16 GMT\r\nContent-Type: text/plain\r\nContent-Length: 100\r\nConnection: keep-alive\r\n\r\nqueued messages: 3\r\nlast requested: 0 sec. ago\r\nactive subscribers: 1\r\nlast message id: 1796636656:0"), uint8(1))
	const readBound = maxAnswerHeader + maxAnswerFraming + maxAnswerBody + 1 + 3*answerBufferSize
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		var whole, pieces answer
		all := &pieceReader{data: data, step: len(data) + 1}
		errWhole := readAnswer(bufio.NewReaderSize(all, answerBufferSize), &whole)
		if all.read > readBound {
			t.Fatalf("read %d bytes, more than %d", all.read, readBound)
		}
		if errWhole == nil && (len(whole.body) > maxAnswerBody || whole.status < 200 || whole.status > 999) {
			t.Fatalf("status %d, body of %d bytes", whole.status, len(whole.body))
		}
		errPieces := readAnswer(bufio.NewReaderSize(&pieceReader{data: data, step: int(step) + 1}, answerBufferSize), &pieces)
		if (errWhole == nil) != (errPieces == nil) {
			t.Fatalf("at once: %v; in pieces of %d: %v", errWhole, int(step)+1, errPieces)
		}
		if errWhole == nil && (whole.status != pieces.status || string(whole.statusText) != string(pieces.statusText) ||
			string(whole.body) != string(pieces.body) || whole.close != pieces.close) {
			t.Fatalf("at once: %d %q %q %v; in pieces: %d %q %q %v", whole.status, whole.statusText, whole.body, whole.close,
				pieces.status, pieces.statusText, pieces.body, pieces.close)
		}
	})
}

// serveFixed answers every request read from conn with answer, reading
// requests without allocating: lines up to an empty one, then the body
// its Content-Length gives.
func serveFixed(conn net.Conn, answer []byte) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		n := 0
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 {
				break
			}
			if name := []byte("content-length: "); len(line) > len(name) && bytes.EqualFold(line[:len(name)], name) {
				n, _ = strconv.Atoi(string(bytes.TrimSpace(line[len(name):])))
			}
		}
		if _, err := r.Discard(n); err != nil {
			return
		}
		if _, err := conn.Write(answer); err != nil {
			return
		}
	}
}

// BenchmarkPublish compares the CPU and allocations of one publish of the
// hand-written client and of net/http, against a server that costs
// little.
func BenchmarkPublish(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 33\r\n\r\n{\"channel\":\"bench-0\",\"id\":\"1-1\"}\n")
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serveFixed(conn, answer) })
		}
	})
	for _, client := range []string{"raw", "net/http"} {
		b.Run(client, func(b *testing.B) {
			c, err := parseConfig("run", []string{"--url", "http://" + ln.Addr().String(), "--publishers", "1"}, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			p, err := newPublisher(c)
			if err != nil {
				b.Fatal(err)
			}
			defer p.close()
			if client == "net/http" {
				p.nodes[0].raw = nil
			}
			payload := appendPayload(nil, 1, time.Now().UnixNano(), 100)
			b.ReportAllocs()
			for b.Loop() {
				if err := p.publish(b.Context(), 0, 0, 0, nil, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
