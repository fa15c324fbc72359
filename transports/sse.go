package transports

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports/internal/hijack"
	"github.com/edgeworks/edge/transports/internal/idle"
	"github.com/edgeworks/edge/transports/metrics"
)

// maxPadding bounds the padding= a client may ask for.
const maxPadding = 8 << 10

// sseConn is one SSE stream. Over HTTP/1 it hijacks the connection and
// keeps no goroutine while idle: the server's idle watcher notices the
// client leave (or, where the connection cannot be parked, a goroutine
// blocked reading it); over HTTP/2 the handler goroutine waits instead.
//
// An SSE client sends nothing once the stream runs, so a client that
// stopped reading (frozen, suspended) looks alive. Over HTTP/1 every
// heartbeat checks the hijacked connection's kernel send queue: a peer
// that has not taken, within a heartbeat, the bytes that waited for it at
// the previous one ends the stream as a slow consumer. Over HTTP/2, and
// off Linux, it ends when a write fails to complete within writeTimeout.
type sseConn struct {
	stream
	out    func([]byte) error // writes and flushes, within writeTimeout
	direct directOut          // the hijacked connection's writer (out, then)
	multi  bool               // several channels, or deltas: data is the JSON object, id the cursor
	cursor resume.Cursor      // position of what was written, per channel
	buf    []byte             // pooled while the stream writes, nil while idle
	gz     *gzipStream        // the stream's compressor; nil: the stream is not compressed
	sendq  sendQueue          // the hijacked connection's; used holding the turn
	watch  *idle.Handle       // the hijacked connection, parked; nil: a goroutine watches it. Set holding the turn
}

// serveSSE streams to EventSource and other SSE clients.
//
// The stream starts with "retry:" (and padding= comment bytes for proxies
// that buffer), then history after the cursor, then an id-only event that
// sets the client's Last-Event-ID to the full position even before the first
// message, then live events and ": hb" heartbeat comments. It ends with an
// "event: disconnect" when the edge closes it.
//
// A compressed stream (see Config.Compress) is one gzip member: every
// write of the stream, the heartbeats included, is compressed on its own
// (see gzipStream) and goes out at once, and its last write, the
// disconnect event, ends the member.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request, req subscribeRequest) {
	padding, err := queryInt(r, "padding", 0, 0, maxPadding)
	if err != nil {
		writeError(w, err)
		return
	}
	compress, err := s.gzipResponse(r)
	if err != nil {
		writeError(w, err)
		return
	}
	sess, err := s.newSession(metrics.SSE)
	if err != nil {
		writeError(w, err)
		return
	}
	s.presenceSession(sess, &req, true)
	sess.SetDelta(req.delta)
	sess.SetConflate(req.conflate)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	// A delta is no payload a plain EventSource could use: a delta
	// stream's events carry the JSON object, which says what each is.
	c := &sseConn{multi: len(req.channels) > 1 || req.delta}
	if compress {
		setGzipHeader(h)
		c.gz = new(gzipStream)
	}
	var conn net.Conn
	var head []byte         // hijacked: the response head, sent with the first bytes
	var ended chan struct{} // not hijacked: closed when the stream ended
	if r.ProtoMajor == 1 {
		s.hijacked.Add(1) // before the hijack, which Run's http.Server.Shutdown stops waiting for
		conn, head, err = hijackSSE(w)
		if conn == nil {
			s.hijacked.Done()
		}
		if err != nil && !errors.Is(err, http.ErrNotSupported) {
			s.log.Debug("sse: hijack failed", "err", err)
			sess.Release()
			return
		}
	}
	if conn != nil {
		c.sendq = watchSendQueue(conn)
		c.direct = newDirectOut(conn)
		c.out = c.direct.write
		c.init(s, metrics.SSE, sess, req.heartbeat, c.flush, func() {
			c.watch.Remove() // before the descriptor can be reused
			conn.Close()
			s.hijacked.Done()
		})
	} else {
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		c.out = func(b []byte) error {
			rc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := w.Write(b); err != nil {
				return err
			}
			return rc.Flush()
		}
		ended = make(chan struct{})
		c.init(s, metrics.SSE, sess, req.heartbeat, c.flush, func() { close(ended) })
	}
	if c.gz != nil {
		plain := c.out
		c.out = func(b []byte) error { return c.writeGzip(plain, b) }
		s.countCompressed(&c.stream)
	}
	c.expireAt(req.expiry())
	if !c.open(r.Context(), req, head, padding) {
		c.end()
		c.turn.Unlock()
		if ended != nil {
			<-ended
		}
		return
	}
	c.startHeartbeat()
	if conn != nil {
		if !c.park(conn) {
			go c.watchClient(conn)
		}
		c.turn.Unlock()
		return
	}
	c.turn.Unlock()
	select {
	case <-r.Context().Done():
		c.leave()
		<-ended
	case <-ended:
	}
}

// hijackSSE takes the HTTP/1 connection from net/http, so the stream
// holds none of net/http's buffers or goroutines, and returns the response
// head for the stream's first write. The body runs until the connection
// closes.
func hijackSSE(w http.ResponseWriter) (net.Conn, []byte, error) {
	conn, header, _, err := hijack.Take(w)
	if err != nil {
		return nil, nil, err
	}
	return conn, hijack.AppendStreamHead(nil, header), nil
}

// open writes the start of the stream (after head, the response head of a
// hijacked connection), joins the request's channels with their history
// and writes the id-only event. It reports whether the
// stream goes on; when it does not, it has told the client why. The caller
// holds the turn.
func (c *sseConn) open(ctx context.Context, req subscribeRequest, head []byte, padding int) bool {
	c.takeBuf()
	if c.gz != nil {
		c.gz.prefix = head
	} else {
		c.buf = append(c.buf, head...)
	}
	c.buf = appendSSERetry(c.buf, c.s.cfg.SSERetry.Milliseconds())
	if padding > 0 {
		c.buf = append(c.buf, ':')
		for range padding {
			c.buf = append(c.buf, ' ')
		}
		c.buf = append(c.buf, '\n', '\n')
	}
	// Every channel's start is fixed before the first bytes (the response
	// head) can reach the client.
	joins := make([]edge.Joining, 0, len(req.channels))
	for _, ch := range req.channels {
		j, err := c.sess.Start(ctx, ch, req.since(ch))
		if err != nil {
			c.refuse(ctx, err)
			return false
		}
		joins = append(joins, j)
		c.cursor.Set(ch, j.Position()) // so history's ids place every channel, even those not yet caught up
	}
	for _, j := range joins {
		ch := j.Channel()
		pos, err := c.sess.Finish(ctx, j, func(p edge.Page) error {
			if j.Conflate() > 0 {
				p = edge.ConflatePage(p)
			}
			return c.writePage(ch, p)
		})
		if err != nil {
			c.refuse(ctx, err)
			return false
		}
		c.cursor.Set(ch, pos)
	}
	c.takeBuf()
	c.buf = append(c.buf, "id: "...)
	c.buf = c.cursor.AppendTo(c.buf)
	c.buf = append(c.buf, '\n', '\n')
	return c.writeBuf() == nil
}

// refuse ends a stream whose join failed, telling the client why.
func (c *sseConn) refuse(ctx context.Context, err error) {
	d, closed := c.sess.Closed()
	if !closed {
		c.s.log.WarnContext(ctx, "sse join failed", "err", err)
		d = edge.DisconnectServerError
	}
	c.disconnect(d)
}

// park hands the hijacked connection to the server's idle watcher, which
// calls leave once the connection is readable: an SSE client sends
// nothing after its request, so that means it left (an end of stream or a
// reset) or misbehaves. It reports false when the connection cannot be
// parked. The caller holds the turn.
func (c *sseConn) park(conn net.Conn) bool {
	rc := parkable(conn)
	if rc == nil {
		return false
	}
	h := c.s.idle.Add(rc, c.leave)
	if h == nil {
		return false
	}
	if h.Park() != nil {
		h.Remove()
		return false
	}
	c.watch = h
	return true
}

// watchClient blocks reading the hijacked connection, where it cannot be
// parked: any outcome means the client left (or misbehaves).
func (c *sseConn) watchClient(conn net.Conn) {
	var b [1]byte
	conn.Read(b[:])
	c.leave()
}

// flush is the stream's write turn: queued frames, a due heartbeat, or the
// end of the stream.
func (c *sseConn) flush() {
	if c.gone.Load() {
		c.end()
		return
	}
	fp := c.take()
	frames := *fp
	n, first := countMessages(frames)
	if len(frames) > 0 {
		c.takeBuf()
		for _, f := range frames {
			c.appendFrame(f)
		}
	}
	putFrames(fp)
	if d, closed := c.sess.Closed(); closed {
		c.disconnect(d)
		c.end()
		return
	}
	if c.heartbeatDue() {
		if c.sendq.stalled() {
			c.stall()
			return
		}
		if c.buf == nil {
			c.takeBuf()
			c.buf = append(c.buf, ": hb\n\n"...)
		}
	}
	if err := c.writeBuf(); err != nil {
		c.fail(err)
		return
	}
	c.delivered(n, first)
}

// stall ends a stream whose peer took nothing of what waited for it for a
// whole heartbeat, as a slow consumer. It writes no disconnect event,
// which the peer would not read either, and resets the connection, so
// that the kernel drops at once what waits in its buffers.
func (c *sseConn) stall() {
	c.putBuf()
	c.sess.Close(edge.DisconnectSlow)
	c.sendq.abort()
	c.end()
}

// takeBuf borrows a write buffer from the pool if the stream holds none.
func (c *sseConn) takeBuf() {
	if c.buf == nil {
		c.buf = (*bufPool.Get().(*[]byte))[:0]
	}
}

// writeBuf writes the buffer, if any, and returns it to the pool.
func (c *sseConn) writeBuf() error {
	if c.buf == nil {
		return nil
	}
	err := c.out(c.buf)
	c.putBuf()
	return err
}

// writeGzip compresses b into a pooled buffer and writes that with plain,
// the connection's own out.
func (c *sseConn) writeGzip(plain func([]byte) error, b []byte) error {
	zp := bufPool.Get().(*[]byte)
	z := c.gz.append((*zp)[:0], b)
	err := plain(z)
	if cap(z) <= 64<<10 {
		*zp = z[:0]
		bufPool.Put(zp)
	}
	return err
}

// putBuf returns the buffer, if any, to the pool.
func (c *sseConn) putBuf() {
	if c.buf == nil {
		return
	}
	b := c.buf[:0]
	c.buf = nil
	if cap(b) <= 64<<10 {
		bufPool.Put(&b)
	}
}

func (c *sseConn) appendFrame(f *edge.Frame) {
	switch {
	case f.IsPresence(): // no id: not in history, and the cursor stays
		c.buf = append(c.buf, frameSSE(f)...)
	case !c.multi:
		c.cursor.Set(f.Channel, f.ID)
		c.buf = append(c.buf, frameSSE(f)...)
	default:
		c.cursor.Set(f.Channel, f.ID)
		c.buf = append(c.buf, "id: "...)
		c.buf = c.cursor.AppendTo(c.buf)
		c.buf = append(c.buf, '\n')
		c.buf = append(c.buf, frameSSEMulti(f)...)
	}
}

// writePage writes a page of history for channel, after an "event: gap"
// when the page says messages were lost.
func (c *sseConn) writePage(channel string, p edge.Page) error {
	c.takeBuf()
	if p.Gap {
		c.s.metrics.Gap()
		c.buf = append(c.buf, "event: gap\ndata: {\"channel\":"...)
		c.buf = appendJSONString(c.buf, channel)
		c.buf = append(c.buf, "}\n\n"...)
	}
	for _, m := range p.Messages {
		c.appendFrame(edge.NewFrame(m))
	}
	if err := c.writeBuf(); err != nil {
		return err
	}
	c.s.metrics.Delivered(metrics.SSE, len(p.Messages))
	return nil
}

// disconnect tells the client why the stream ends and when to come back.
func (c *sseConn) disconnect(d edge.Disconnect) {
	c.takeBuf()
	c.buf = appendSSERetry(c.buf, c.s.reconnectDelay(d).Milliseconds())
	c.buf = append(c.buf, "event: disconnect\ndata: {\"code\":"...)
	c.buf = strconv.AppendInt(c.buf, int64(d.Code), 10)
	c.buf = append(c.buf, `,"reason":"`...)
	c.buf = append(c.buf, d.Reason...)
	c.buf = append(c.buf, `","reconnect":`...)
	c.buf = strconv.AppendBool(c.buf, d.Reconnect())
	c.buf = append(c.buf, "}\n\n"...)
	if c.gz != nil {
		c.gz.finish()
	}
	c.writeBuf()
}
