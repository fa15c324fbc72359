package transports

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgeworks/edge/transports/internal/hijack"
)

// How long a client may take, as net/http is told in Run: to send a
// request's head, and to start its next request on a keep-alive
// connection.
const (
	headTimeout = 10 * time.Second
	idleTimeout = 2 * time.Minute
)

// publishPath is the one path the publish lane serves.
const publishPath = "/v1/publish"

// laneBuffer is the read buffer of a lane connection: a plain publish's
// head and a typical payload. A head that does not fit goes to net/http.
const laneBuffer = 4 << 10

// maxLaneAnswer bounds an answer the lane buffers; publish answers are a
// few hundred bytes.
const maxLaneAnswer = 64 << 10

// publishLane serves the publishes of plain HTTP/1.1 keep-alive
// connections (see "The publish lane" in the package doc). It sorts the
// connections of the server's listener (hijack.NewListener): a connection
// that starts with a publish is served here, request by request, as long
// as each is a plain HTTP/1.1 publish (hijack.ParseRequestHead); every
// other connection, and a lane connection at its first other request, is
// given to net/http, with what the lane read of it replayed first. Each
// request is served by the server's own handler, so the lane reads
// requests and writes answers but decides nothing a publish answers.
type publishLane struct {
	s *Server

	mu      sync.Mutex
	idle    map[net.Conn]struct{} // mu guards idle and closing: connections waiting for a request
	closing bool
}

func newPublishLane(s *Server) *publishLane {
	return &publishLane{s: s, idle: make(map[net.Conn]struct{})}
}

// close closes the connections waiting for a request; those serving one
// close once it is answered, and new ones go to net/http.
func (l *publishLane) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closing = true
	for conn := range l.idle {
		conn.Close()
	}
}

// waiting notes that conn waits for a request, or reports false when the
// lane is closing.
func (l *publishLane) waiting(conn net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	l.idle[conn] = struct{}{}
	return true
}

// open reports whether the lane is not closing.
func (l *publishLane) open() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closing
}

// serving notes that conn has a request to serve, or reports false when
// the lane is closing.
func (l *publishLane) serving(conn net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.idle, conn)
	return !l.closing
}

// sort serves conn, a connection rec accepted, when it starts with a
// publish, else gives it to net/http untouched.
func (l *publishLane) sort(rec *hijack.Listener, conn net.Conn) {
	if !l.waiting(conn) {
		rec.GiveBack(conn, nil)
		return
	}
	conn.SetReadDeadline(time.Now().Add(headTimeout))
	var first [len("POST " + publishPath)]byte
	n, err := peek(conn, first[:])
	switch {
	case err != nil || n == 0:
		l.serving(conn)
		conn.Close()
	case string(first[:n]) != ("POST " + publishPath)[:n]:
		l.serving(conn)
		rec.GiveBack(conn, nil)
	default:
		c := &laneConn{l: l, rec: rec, conn: conn, out: newDirectOut(conn), remote: conn.RemoteAddr().String()}
		c.br = bufio.NewReaderSize(c, laneBuffer)
		c.serve()
	}
}

// laneConn is a connection the lane serves. Its methods run on the
// connection's goroutine.
type laneConn struct {
	l      *publishLane
	rec    *hijack.Listener // gives the connection to net/http
	out    directOut        // writes answers; only this goroutine writes and closes conn
	conn   net.Conn
	br     *bufio.Reader // reads c (Read), so every read is bounded by readBy
	remote string

	readBy  time.Time    // the read deadline wanted for the next read
	readSet time.Time    // the read deadline set on conn
	req     http.Request // the request being served
	url     url.URL      // its URL
	body    laneBody     // its body
	w       laneWriter   // its answer
	keys    []string     // an answer's header names, sorted
	answer  []byte       // an answer's bytes
}

// serve reads and answers requests until the client closes, a request is
// not a plain publish (then net/http takes the connection), or the lane
// closes.
func (c *laneConn) serve() {
	for {
		head, n, err := c.next()
		query, publish := lanePublish(head)
		switch {
		case err == nil && publish:
		case err == nil || errors.Is(err, hijack.ErrNotPlain):
			pending, _ := c.br.Peek(c.br.Buffered())
			c.rec.GiveBack(c.conn, bytes.Clone(pending))
			return
		default:
			c.conn.Close()
			return
		}
		c.br.Discard(n)
		if !c.answer1(head, query) || !c.l.waiting(c.conn) {
			c.conn.Close()
			return
		}
	}
}

// next waits for the connection's next request and reads its head. Until
// the head is whole, the connection counts as idle: the lane's close
// closes it.
func (c *laneConn) next() (hijack.RequestHead, int, error) {
	c.readBy = time.Now().Add(idleTimeout)
	_, err := c.br.Peek(1)
	var head hijack.RequestHead
	var n int
	if err == nil {
		c.readBy = time.Now().Add(headTimeout)
		head, n, err = c.readHead()
	}
	if !c.l.serving(c.conn) && err == nil {
		err = net.ErrClosed
	}
	return head, n, err
}

// readHead reads until the buffer holds a whole request head, and parses
// it; a head larger than the buffer is hijack.ErrNotPlain.
func (c *laneConn) readHead() (hijack.RequestHead, int, error) {
	for {
		buffered, _ := c.br.Peek(c.br.Buffered())
		head, n, err := hijack.ParseRequestHead(buffered)
		if err != nil || n > 0 {
			return head, n, err
		}
		if len(buffered) == c.br.Size() {
			return hijack.RequestHead{}, 0, hijack.ErrNotPlain
		}
		if _, err := c.br.Peek(len(buffered) + 1); err != nil {
			return hijack.RequestHead{}, 0, err
		}
	}
}

// lanePublish reports whether head is a publish the lane serves, one with
// a known body length, and returns its query.
func lanePublish(head hijack.RequestHead) (query string, ok bool) {
	path, query, _ := strings.Cut(head.Target, "?")
	return query, head.Method == http.MethodPost && path == publishPath && head.ContentLength >= 0
}

// answer1 serves the request of head, whose query is query, with the
// server's handler and writes its answer. It reports whether the
// connection may serve another.
func (c *laneConn) answer1(head hijack.RequestHead, query string) bool {
	// The request, its URL and body are the connection's, reused: nothing
	// keeps a request beyond ServeHTTP.
	c.url = url.URL{Path: publishPath, RawQuery: query}
	c.body = laneBody{c: c, left: head.ContentLength}
	body := &c.body
	c.req = http.Request{
		Method:        head.Method,
		URL:           &c.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        head.Header,
		Body:          body,
		ContentLength: head.ContentLength,
		Host:          head.Host,
		RemoteAddr:    c.remote,
		RequestURI:    head.Target,
		Close:         head.Close,
	}
	w := c.writer()
	c.l.s.handler.ServeHTTP(w, &c.req)
	keep := !head.Close && w.err == nil && body.err == nil && body.finish() &&
		!slices.Contains(w.header["Connection"], "close") && c.l.open()
	return c.write(w, keep) && keep
}

// writer returns the connection's writer, reset for a new answer. The
// handler is done with the previous one: nothing keeps a ResponseWriter
// beyond ServeHTTP.
func (c *laneConn) writer() *laneWriter {
	if c.w.header == nil {
		c.w = laneWriter{c: c, header: make(http.Header, 8)}
	}
	clear(c.w.header)
	c.w.status, c.w.body, c.w.err = 0, c.w.body[:0], nil
	return &c.w
}

// write writes w's answer as net/http would, with Connection: close
// unless keep. It reports whether the write succeeded.
func (c *laneConn) write(w *laneWriter, keep bool) bool {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	b := append(c.answer[:0], "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(w.status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(w.status)...)
	b = append(b, "\r\n"...)
	c.keys = c.keys[:0]
	for k := range w.header {
		if k != "Connection" {
			c.keys = append(c.keys, k)
		}
	}
	slices.Sort(c.keys)
	for _, k := range c.keys {
		for _, v := range w.header[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = appendHeaderValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	if w.header["Date"] == nil {
		b = append(b, "Date: "...)
		b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
		b = append(b, "\r\n"...)
	}
	if w.header["Content-Length"] == nil {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(w.body)), 10)
		b = append(b, "\r\n"...)
	}
	if !keep {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, w.body...)
	c.answer = b
	return c.out.write(b) == nil
}

// appendHeaderValue appends v with CR and LF as spaces, as net/http
// writes header values.
func appendHeaderValue(b []byte, v string) []byte {
	for i := range len(v) {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// Read reads the connection for the buffered reader, first moving the
// read deadline when the one set is earlier than the one wanted
// (readBy), or later by more than a quarter of the time it allows. It
// sets the deadline that quarter later than wanted, so a keep-alive
// publisher re-arms its idle deadline about every 30 s, not once a
// request, and a client is cut between one and 1.25 times its timeout
// after it went silent.
func (c *laneConn) Read(p []byte) (int, error) {
	if c.readBy.After(c.readSet) || c.readSet.Sub(c.readBy) > time.Until(c.readBy)/4 {
		c.readSet = c.readBy.Add(time.Until(c.readBy) / 4)
		c.conn.SetReadDeadline(c.readSet)
	}
	return c.conn.Read(p)
}

// laneBody is the body of a lane request: the next left bytes of the
// connection.
type laneBody struct {
	c    *laneConn
	left int64
	err  error // the read error that ended the body early
}

// Read reads the body.
func (b *laneBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.c.br.Read(p)
	b.left -= int64(n)
	switch {
	case b.left == 0:
		return n, io.EOF
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	b.err = err
	return n, err
}

// Close does nothing: finish deals with an unread body.
func (b *laneBody) Close() error { return nil }

// finish skips what the handler left of the body when it is already
// buffered, and reports whether the connection is at the next request.
func (b *laneBody) finish() bool {
	if b.left > int64(b.c.br.Buffered()) {
		return false
	}
	b.c.br.Discard(int(b.left))
	b.left = 0
	return true
}

// laneWriter is the http.ResponseWriter of a lane request: it keeps the
// answer for laneConn.write.
type laneWriter struct {
	c      *laneConn
	header http.Header
	status int
	body   []byte
	err    error // the answer was too large
}

// Header returns the answer's header.
func (w *laneWriter) Header() http.Header { return w.header }

// WriteHeader sets the status; only the first call counts.
func (w *laneWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

// Write adds p to the answer's body.
func (w *laneWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if len(w.body)+len(p) > maxLaneAnswer {
		w.err = errors.New("publish lane: answer too large")
		return 0, w.err
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// SetReadDeadline sets the deadline of the body's next read from the
// connection (http.ResponseController finds it).
func (w *laneWriter) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		t = time.Now().Add(idleTimeout)
	}
	w.c.readBy = t
	return nil
}
