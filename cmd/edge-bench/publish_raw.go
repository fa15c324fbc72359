package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Bounds of one answer to a publish, read by readAnswer.
const (
	maxAnswerLines   = 64       // status line, header and trailer lines
	maxAnswerHeader  = 16 << 10 // bytes of the status line and header block
	maxAnswerFraming = 16 << 10 // bytes of chunk-size lines, chunk ends and trailers
	maxAnswerBody    = 64 << 10 // bytes of the body
	answerBufferSize = 4096     // of a connection's reader: the longest line
)

// maxIdleConn is how long a publish connection may stay idle and still be
// used again. The edge and Nchan close idle connections after two minutes;
// net/http notices such a close on an idle connection and drops it, but
// rawPublisher reads nothing between publishes, so it drops idle
// connections well before a server would.
const maxIdleConn = 30 * time.Second

// errBadAnswer is the error (wrapped) of an answer readAnswer cannot read
// or will not read: malformed, or beyond its bounds.
var errBadAnswer = errors.New("malformed HTTP answer")

// rawPublisher publishes single messages over HTTP/1.1 keep-alive
// connections with a small hand-written client: a request is written with
// one write from a buffer of its connection, the answer read with a reader
// of its connection, within bounds; a connection is dialed when no idle one
// is left and closed after any error. It costs a fraction of net/http's CPU
// per request, which matters because the tool and the server it measures
// share the machine's CPUs. It is safe for concurrent use; close closes its
// idle connections.
type rawPublisher struct {
	addr     string   // host:port to dial
	heads    [][]byte // per channel: the request up to its last header line, excluded
	paths    []string // per channel: the path, for errors
	accepted func(status int) bool
	timeout  time.Duration // of one publish, dial included
	dialer   net.Dialer
	slots    chan struct{} // a token per publish under way: bounds the connections

	mu     sync.Mutex // guards idle, closed
	idle   []*rawConn // most recently used last
	closed bool
}

// newRawPublisher returns a publisher to the server at host (host:port)
// that posts to the request URIs uris (per channel), with up to conns
// connections, and counts an answer as acknowledged when accepted says
// so of its status.
func newRawPublisher(host string, uris []*url.URL, conns int, accepted func(int) bool) *rawPublisher {
	p := &rawPublisher{
		addr:     host,
		accepted: accepted,
		timeout:  publishTimeout,
		dialer:   net.Dialer{KeepAlive: -1}, // loopback, bounded runs, as the subscribers
		slots:    make(chan struct{}, conns),
	}
	for _, u := range uris {
		// No Content-Type, as net/http sends none: given one, Nchan would
		// tell its WebSocket subscribers the message is binary.
		head := "POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: edge-bench\r\n"
		p.heads = append(p.heads, []byte(head))
		p.paths = append(p.paths, u.Path)
	}
	return p
}

// rawConn is one connection of a rawPublisher, used by one publish at a
// time.
type rawConn struct {
	conn      net.Conn
	r         *bufio.Reader
	req       []byte // the request being sent, kept for the next one
	answer    answer
	idleSince time.Time
	abort     func() // makes a blocked write or read return at once
}

// publish posts payload to channel ch, with an Idempotency-Key header
// unless key is empty, and returns once the server acknowledged it, as
// publisher.publish does.
func (p *rawPublisher) publish(ctx context.Context, ch int, key, payload []byte) error {
	path := p.paths[ch]
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("POST %s: %w", path, ctx.Err())
	}
	defer func() { <-p.slots }()
	now := time.Now()
	deadline := now.Add(p.timeout)
	c, err := p.take(ctx, now, deadline)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	keep, err := c.roundTrip(ctx, p.heads[ch], key, payload, deadline)
	if err == nil && !p.accepted(c.answer.status) {
		keep = false
		err = fmt.Errorf("%s: %s", c.answer.statusText, clip(c.answer.body))
	}
	if keep {
		p.put(c, now)
	} else {
		c.conn.Close()
	}
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	return nil
}

// take returns an idle connection that has been idle since after now −
// maxIdleConn, closing those idle longer, or dials a new one.
func (p *rawPublisher) take(ctx context.Context, now, deadline time.Time) (*rawConn, error) {
	for {
		p.mu.Lock()
		var c *rawConn
		if n := len(p.idle); n > 0 {
			c = p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
		}
		p.mu.Unlock()
		if c == nil {
			break
		}
		if now.Sub(c.idleSince) <= maxIdleConn {
			return c, nil
		}
		c.conn.Close()
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	c := &rawConn{conn: conn, r: bufio.NewReaderSize(conn, answerBufferSize)}
	c.abort = func() { conn.SetDeadline(aLongTimeAgo) }
	return c, nil
}

// put keeps c for the next publish, or closes it if p is closed.
func (p *rawPublisher) put(c *rawConn, now time.Time) {
	c.idleSince = now
	p.mu.Lock()
	if !p.closed {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.conn.Close()
	}
}

// close closes the idle connections; a connection in use when close is
// called is closed when its publish ends.
func (p *rawPublisher) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.conn.Close()
	}
}

// aLongTimeAgo is a deadline in the past: setting it makes blocked reads
// and writes return at once.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip sends head, an Idempotency-Key header with key (none when key
// is empty), the length of payload and payload as one request and reads
// the answer into c.answer. keep reports whether c can carry the
// next request. It returns early with ctx's error when ctx is done.
func (c *rawConn) roundTrip(ctx context.Context, head, key, payload []byte, deadline time.Time) (keep bool, err error) {
	if err := c.conn.SetDeadline(deadline); err != nil {
		return false, err
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, c.abort)
		defer func() {
			if !stop() { // the deadline is or will be in the past
				keep = false
				if err != nil {
					err = ctx.Err()
				}
			}
		}()
	}
	if cap(c.req) > maxKeptBuffer {
		c.req = nil
	}
	c.req = append(c.req[:0], head...)
	if len(key) > 0 {
		c.req = append(c.req, "Idempotency-Key: "...)
		c.req = append(c.req, key...)
		c.req = append(c.req, "\r\n"...)
	}
	c.req = append(c.req, "Content-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(payload)), 10)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, payload...)
	if _, err := c.conn.Write(c.req); err != nil {
		return false, fmt.Errorf("send request: %w", err)
	}
	if err := readAnswer(c.r, &c.answer); err != nil {
		return false, fmt.Errorf("read answer: %w", err)
	}
	return !c.answer.close, nil
}

// answer is what readAnswer read of one HTTP/1.1 answer. Its buffers are
// reused by the next readAnswer.
type answer struct {
	status     int
	statusText []byte // "503 Service Unavailable"
	body       []byte
	close      bool // the connection cannot carry another request
}

// readAnswer reads one answer to a POST from r into a: the status line,
// the header block (at most maxAnswerLines lines and maxAnswerHeader bytes,
// each line shorter than r's buffer) and the body, delimited by
// Content-Length, by chunked transfer coding (at most maxAnswerFraming
// bytes of framing and trailers) or, without either, by the end of the
// connection; the body may be at most maxAnswerBody bytes. Informational
// (1xx) answers are refused, as edge-bench never asks for one. After an
// error, r is in an unknown state.
func readAnswer(r *bufio.Reader, a *answer) error {
	a.status, a.statusText, a.body, a.close = 0, a.statusText[:0], a.body[:0], false
	lines, header := maxAnswerLines, maxAnswerHeader
	line, err := answerLine(r, &lines, &header)
	if err != nil {
		return err
	}
	rest, ok := bytes.CutPrefix(line, []byte("HTTP/1.1 "))
	if !ok {
		// An HTTP/1.0 answer: the connection ends with it.
		rest, ok = bytes.CutPrefix(line, []byte("HTTP/1.0 "))
		a.close = true
	}
	if !ok || len(rest) < 3 || len(rest) > 3 && rest[3] != ' ' ||
		!isDigit(rest[0]) || !isDigit(rest[1]) || !isDigit(rest[2]) || rest[0] == '0' {
		return fmt.Errorf("%w: status line %q", errBadAnswer, clip(line))
	}
	a.status = int(rest[0]-'0')*100 + int(rest[1]-'0')*10 + int(rest[2]-'0')
	a.statusText = append(a.statusText, rest...)
	if a.status < 200 {
		return fmt.Errorf("%w: informational status %d", errBadAnswer, a.status)
	}

	length := int64(-1) // none given
	chunked := false
	for {
		line, err := answerLine(r, &lines, &header)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || name[0] == ' ' || name[0] == '\t' {
			return fmt.Errorf("%w: header line %q", errBadAnswer, clip(line))
		}
		value = bytes.Trim(value, " \t")
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := parseLength(value)
			if !ok || length >= 0 && n != length {
				return fmt.Errorf("%w: Content-Length %q", errBadAnswer, clip(value))
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) || chunked {
				return fmt.Errorf("%w: Transfer-Encoding %q", errBadAnswer, clip(value))
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			for token := range bytes.SplitSeq(value, []byte(",")) {
				if bytes.EqualFold(bytes.Trim(token, " \t"), []byte("close")) {
					a.close = true
				}
			}
		}
	}

	switch {
	case a.status == 204 || a.status == 304:
		return nil
	case chunked:
		// A length beside chunked coding may have misled someone between
		// us and the server (RFC 9112, section 6.3): use this connection no
		// more.
		a.close = a.close || length >= 0
		return a.readChunked(r, &lines)
	case length > maxAnswerBody:
		return fmt.Errorf("%w: body of %d bytes, more than %d", errBadAnswer, length, maxAnswerBody)
	case length >= 0:
		return a.readBody(r, int(length))
	}
	// Neither: the body ends with the connection.
	a.close = true
	for len(a.body) <= maxAnswerBody {
		if err := a.readBody(r, min(answerBufferSize, maxAnswerBody+1-len(a.body))); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return err
		}
	}
	return fmt.Errorf("%w: body longer than %d bytes", errBadAnswer, maxAnswerBody)
}

// readChunked reads a chunked body, its last chunk and trailers.
func (a *answer) readChunked(r *bufio.Reader, lines *int) error {
	framing := maxAnswerFraming
	for {
		line, err := answerLine(r, lines, &framing)
		if err != nil {
			return err
		}
		hex, _, _ := bytes.Cut(line, []byte(";")) // chunk extensions are ignored
		hex = bytes.TrimRight(hex, " \t")
		size, ok := parseHex(hex)
		if !ok {
			return fmt.Errorf("%w: chunk size %q", errBadAnswer, clip(line))
		}
		if size == 0 {
			break
		}
		if size > uint64(maxAnswerBody-len(a.body)) {
			return fmt.Errorf("%w: body longer than %d bytes", errBadAnswer, maxAnswerBody)
		}
		if err := a.readBody(r, int(size)); err != nil {
			return err
		}
		if line, err = answerLine(r, lines, &framing); err != nil {
			return err
		} else if len(line) > 0 {
			return fmt.Errorf("%w: chunk followed by %q", errBadAnswer, clip(line))
		}
	}
	for { // trailers, ignored
		line, err := answerLine(r, lines, &framing)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
	}
}

// readBody appends the next n bytes of r to a.body.
func (a *answer) readBody(r *bufio.Reader, n int) error {
	start := len(a.body)
	if cap(a.body)-start < n {
		a.body = append(a.body[:cap(a.body)], make([]byte, n-(cap(a.body)-start))...)
	}
	a.body = a.body[:start+n]
	k, err := io.ReadFull(r, a.body[start:])
	a.body = a.body[:start+k]
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// answerLine reads the next line of an answer, ending in CRLF or LF, and
// returns it without its end; it charges the line to the budgets of
// lines and bytes, and fails once either is spent or at the end of r. The
// line is valid until the next read of r.
func answerLine(r *bufio.Reader, lines, bytesLeft *int) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	*lines--
	*bytesLeft -= len(line)
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("%w: line longer than %d bytes", errBadAnswer, r.Size())
	case errors.Is(err, io.EOF):
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	case *lines < 0:
		return nil, fmt.Errorf("%w: more than %d lines", errBadAnswer, maxAnswerLines)
	case *bytesLeft < 0:
		return nil, fmt.Errorf("%w: header or chunk framing beyond its bound", errBadAnswer)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, b := range v {
		if !isDigit(b) {
			return 0, false
		}
		n = n*10 + int64(b-'0')
	}
	return n, true
}

// parseHex parses a chunk size: 1 to 8 hexadecimal digits.
func parseHex(v []byte) (uint64, bool) {
	if len(v) == 0 || len(v) > 8 {
		return 0, false
	}
	var n uint64
	for _, b := range v {
		switch {
		case isDigit(b):
			n = n<<4 | uint64(b-'0')
		case 'a' <= b|0x20 && b|0x20 <= 'f':
			n = n<<4 | uint64(b|0x20-'a'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

// isDigit reports whether b is an ASCII decimal digit.
func isDigit(b byte) bool { return '0' <= b && b <= '9' }
