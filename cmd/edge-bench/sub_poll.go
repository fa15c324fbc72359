package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// pollHold is the hold a long-poll subscriber asks for.
const pollHold = 25 * time.Second

// pollMaxBody bounds one long-poll answer; the limit= a subscriber asks
// for keeps the edge's answers of edge-bench payloads below it.
const pollMaxBody = 16 << 20

// pollLimit returns the limit= of a long-poll subscriber for payloads of
// size bytes: 1,000 messages, fewer when they would not fit in pollMaxBody.
func pollLimit(size int) int { return max(1, min(1000, pollMaxBody/(size+256))) }

// Fields of a long-poll answer that runPoll looks for.
var (
	cursorField     = []byte(`"cursor":"`)
	disconnectField = []byte(`"disconnect":`)
	gapTrue         = []byte(`"gap":true`)
)

// connectPoll subscribes by long-polling, with a small hand-written
// HTTP/1.1 client (one keep-alive connection, small buffers, as
// connectSSE): a first poll with timeout=0 joins and returns the cursor
// (ready), then each poll sends the last cursor as since= and holds up to
// pollHold. When the edge closes the connection after an answer, the next
// poll dials again. Every message object of an answer counts, read as
// scanMessages reads WebSocket frames. With a cursor (--reconnect) the
// first poll sends it as since=, so that it is answered at once with what
// came after it.
func (s *subscriber) connectPoll(ctx context.Context) (receive func() error, err error) {
	prefix := "channel=" + channelName(s.channel) + "&transport=poll" + s.env.query
	limit := "&limit=" + strconv.Itoa(pollLimit(s.env.size))
	p := &poller{
		s:    s,
		ctx:  ctx,
		held: prefix + "&timeout=" + pollHold.String() + limit + "&since=",
	}
	first := prefix + "&timeout=0"
	if len(s.cursor) > 0 {
		first += limit + "&since=" + url.QueryEscape(string(s.cursor))
	}
	if err := p.poll(first, 0); err != nil {
		p.close()
		return nil, err
	}
	return p.receive, nil
}

// poller is the state of one long-poll subscriber, used by one goroutine
// at a time.
type poller struct {
	s      *subscriber
	ctx    context.Context
	held   string    // the query of a held poll, up to the cursor
	c      *pollConn // nil between a closed connection and the next dial
	cursor []byte    // of the last answer
	body   []byte    // of the last answer
}

// receive polls until ctx is done or a poll fails, and closes the
// connection.
func (p *poller) receive() error {
	defer p.close()
	for {
		if err := p.poll(p.held+url.QueryEscape(string(p.cursor)), pollHold); err != nil {
			return err
		}
	}
}

// poll sends one poll with query, which the edge may hold for up to hold,
// and accounts for its answer.
func (p *poller) poll(query string, hold time.Duration) error {
	if p.c == nil {
		var err error
		if p.c, err = p.s.dialPoll(p.ctx); err != nil {
			return err
		}
	}
	if cap(p.body) > maxKeptBuffer {
		p.body = nil
	}
	body, keep, err := p.c.get(p.s, query, hold, p.body[:0])
	p.body = body
	if !keep {
		p.close()
	}
	if err != nil {
		return err
	}
	cursor, ok := quotedAfter(body, cursorField)
	if !ok {
		return errors.New("poll: answer without a cursor")
	}
	p.cursor = append(p.cursor[:0], cursor...)
	p.s.keepCursor(cursor)
	now := time.Now().UnixNano()
	p.s.receiveFrame(body, now)
	if bytes.Contains(body, gapTrue) {
		p.s.gaps++
	}
	if _, d, ok := bytes.Cut(body, disconnectField); ok {
		p.s.adviseRetryMs(d)
		return fmt.Errorf("poll: edge disconnected: %s", clip(body))
	}
	return nil
}

// close closes the connection, if any.
func (p *poller) close() {
	if p.c != nil {
		p.c.close()
		p.c = nil
	}
}

// pollConn is one keep-alive connection of a long-poll subscriber. It is
// used by one goroutine; its connection is closed when the subscriber's
// context ends.
type pollConn struct {
	conn  net.Conn
	r     *bufio.Reader
	req   []byte       // the request being sent, kept for the next one
	gz    *gzip.Reader // of gzip answers (--compress), reset for each
	close func()
}

// dialPoll connects a long-poll subscriber to the edge.
func (s *subscriber) dialPoll(ctx context.Context) (*pollConn, error) {
	conn, err := s.env.dialers[s.id%len(s.env.dialers)].DialContext(ctx, "tcp", s.host())
	if err != nil {
		return nil, fmt.Errorf("poll: %w", err)
	}
	conn = s.meter.wrap(conn)
	return &pollConn{conn: conn, r: bufio.NewReaderSize(conn, 2048), close: closeOnDone(ctx, conn)}, nil
}

// get sends GET /v1/subscribe?query to s's node, which may hold the
// answer for up to hold, and appends the answer's body to buf. keep
// reports whether the connection can carry the next poll.
func (c *pollConn) get(s *subscriber, query string, hold time.Duration, buf []byte) (body []byte, keep bool, err error) {
	c.conn.SetDeadline(time.Now().Add(hold + connectTimeout))
	c.req = append(c.req[:0], "GET /v1/subscribe?"...)
	c.req = append(c.req, query...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, s.host()...)
	c.req = append(c.req, "\r\nUser-Agent: edge-bench\r\n"...)
	if s.env.compress {
		c.req = append(c.req, "Accept-Encoding: gzip\r\n"...)
	}
	c.req = append(c.req, "\r\n"...)
	if _, err := c.conn.Write(c.req); err != nil {
		return buf, false, fmt.Errorf("poll: send request: %w", err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return buf, false, fmt.Errorf("poll: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		s.refusedBy(resp.StatusCode, resp.Header)
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return buf, false, fmt.Errorf("poll: %s: %s", resp.Status, clip(msg))
	}
	if resp.ContentLength > pollMaxBody {
		return buf, false, fmt.Errorf("poll: answer of %d bytes, more than %d", resp.ContentLength, pollMaxBody)
	}
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		if c.gz == nil {
			c.gz, err = gzip.NewReader(resp.Body)
		} else {
			err = c.gz.Reset(resp.Body)
		}
		if err != nil {
			return buf, false, fmt.Errorf("poll: read gzip answer: %w", err)
		}
		r = c.gz
	}
	body, err = readAll(io.LimitReader(r, pollMaxBody+1), buf)
	if err == nil && r != resp.Body {
		// The answer's end: the rest of the gzip stream, for keep-alive.
		_, err = io.Copy(io.Discard, resp.Body)
	}
	switch {
	case err != nil:
		return body, false, fmt.Errorf("poll: read answer: %w", err)
	case len(body) > pollMaxBody:
		return body, false, fmt.Errorf("poll: answer longer than %d bytes", pollMaxBody)
	}
	return body, !resp.Close, nil
}

// quotedAfter returns the JSON string value that follows field (which
// ends with the opening quote) in b, up to the next quote: exact for the
// values edge-bench reads, which hold no escapes.
func quotedAfter(b, field []byte) ([]byte, bool) {
	_, rest, ok := bytes.Cut(b, field)
	if !ok {
		return nil, false
	}
	v, _, ok := bytes.Cut(rest, []byte(`"`))
	return v, ok && len(v) > 0
}
