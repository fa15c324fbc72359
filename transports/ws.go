package transports

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/edge/auth"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports/internal/hijack"
	"github.com/edgeworks/edge/transports/internal/idle"
	"github.com/edgeworks/edge/transports/metrics"
)

// maxArrayBytes bounds a WebSocket frame that carries several messages.
const maxArrayBytes = 256 << 10

// wsConn is one WebSocket connection. Its reader parses client
// operations and runs them holding the write turn (joining writes
// history); live frames and pings are written by the turn. While idle it
// keeps no goroutine: the reader parks the connection with the server's
// idle watcher once it has read everything the client sent, and the
// watcher starts it again when the client sends more. Where the
// connection cannot be parked (TLS) the reader waits in a goroutine.
type wsConn struct {
	stream
	conn     *websocket.Conn
	raw      bool          // conn writes no compressed frames: writeFrames writes messages through direct
	direct   directOut     // conn's connection
	br       *bufio.Reader // what conn reads through; see hijack.SkipPong
	watch    *idle.Handle  // the connection, parked between reads; nil: the reader waits. Set before the reader starts
	wait     time.Duration // the longest silence of the client; a read deadline after each frame
	heard    atomic.Int64  // when the client's last frame was read, as time since monoEpoch
	cursor   resume.Cursor // position of what was written, per channel
	claims   *auth.Claims  // the client's token (nil: none); replaced by refresh holding the turn
	local    bool          // anonymous loopback publishing applies (see access.local)
	ponged   bool          // a pong frame answered the client's ping since the last heartbeat; the turn owns it
	hears    bool          // presence=1 in the URL: subscribe ops without "presence" hear joins and leaves
	delta    bool          // delta=fossil in the URL: subscribe ops without "delta" get deltas
	conflate time.Duration // conflate= in the URL: subscribe ops without "conflate" conflate with it
	subs     bucket        // subscribe ops; only the reader uses it
	pubs     bucket        // publish ops; only the reader uses it
}

// wsReadBuffer is the size of a WebSocket connection's read buffer, which
// it keeps while idle. Client frames are small operations; larger ones are
// read through it (a read larger than the buffer bypasses it). gorilla
// reads through it only when it is larger than 256 bytes, and peeks at
// most a control frame (2+4+125 bytes) in it.
const wsReadBuffer = 320

// serveWS upgrades the request and serves the WebSocket protocol. The
// handler returns once the request's channels are joined; the reader
// goroutine and the write turn carry on.
//
// permessage-deflate is negotiated only when the client offers it and
// the request wants compression (see Config.Compress); otherwise the
// offer is declined.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request, req subscribeRequest) {
	if !s.checkOrigin(r) {
		s.upgrader.Error(w, r, http.StatusForbidden, nil) // before any work for a refused page
		return
	}
	compress, err := s.wantsCompression(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if !compress {
		// gorilla negotiates what the request offers: an offer it does
		// not see is declined.
		r.Header.Del("Sec-Websocket-Extensions")
	}
	sess, err := s.newSession(metrics.WS)
	if err != nil {
		writeError(w, err)
		return
	}
	s.presenceSession(sess, &req, true)
	sess.SetDelta(req.delta)
	sess.SetConflate(req.conflate)
	// The client sees the subscription once the 101 arrives: fix where
	// each channel starts before that, so a message published right after
	// it is delivered.
	joins := make([]edge.Joining, 0, len(req.channels))
	for _, ch := range req.channels {
		j, err := sess.Start(r.Context(), ch, req.since(ch))
		if err != nil {
			sess.Release()
			setRetryAfter(w, err)
			writeError(w, err)
			return
		}
		joins = append(joins, j)
	}
	s.hijacked.Add(1) // before the upgrade, which Run's http.Server.Shutdown stops waiting for
	resp := &hijack.UpgradeResponse{ResponseWriter: w, Size: wsReadBuffer, Wrap: coarseDeadlines}
	conn, err := s.upgrader.Upgrade(resp, r, nil)
	if err != nil {
		sess.Release()
		s.hijacked.Done()
		return // the upgrader answered
	}
	conn.SetReadLimit(int64(s.wsMessageLimit()))
	c := &wsConn{conn: conn, br: resp.Reader(), wait: 2*req.heartbeat + 10*time.Second, claims: req.claims, local: s.access.local(r), hears: req.presence, delta: req.delta, conflate: req.conflate}
	c.init(s, metrics.WS, sess, req.heartbeat, c.flush, func() {
		c.watch.Remove() // before the descriptor can be reused
		conn.Close()
		s.hijacked.Done()
	})
	c.expireAt(req.expiry())
	for _, j := range joins {
		if !c.finish(j, nil) {
			c.end()
			c.turn.Unlock()
			return
		}
	}
	c.raw, c.direct = !offersDeflate(r), newDirectOut(conn.NetConn())
	if !c.raw {
		s.countCompressed(&c.stream)
	}
	c.hear()
	c.conn.SetPongHandler(func(string) error {
		c.hear()
		return nil
	})
	// gorilla answers a client's ping and close from the reader; those
	// answers take the turn too, so that every write to the connection
	// is made holding it (writeFrames writes around gorilla).
	c.conn.SetPingHandler(func(data string) error {
		if c.turn.Lock() {
			defer c.turn.Unlock()
			c.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeTimeout))
		}
		return nil
	})
	c.conn.SetCloseHandler(func(code int, _ string) error {
		if c.turn.Lock() {
			defer c.turn.Unlock()
			c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(writeTimeout))
		}
		return nil
	})
	if rc := parkable(conn.NetConn()); rc != nil {
		c.watch = s.idle.Add(rc, func() { go c.read() })
	}
	c.startHeartbeat()
	c.turn.Unlock()
	if !c.park() {
		go c.read()
	}
}

// read parses client frames and runs them until none is left buffered,
// then parks the connection and returns; the idle watcher starts it again
// when the client sends more. Unparked, it reads until the connection
// fails or closes. Between messages it waits in hijack.SkipPong, a few
// shallow calls deep, so a reader waiting for the rest of a frame keeps a
// minimal stack; the pongs that answer the heartbeat pings are consumed
// there.
func (c *wsConn) read() {
	c.conn.SetReadDeadline(c.heardAt().Add(c.wait))
	for {
		pong, err := hijack.SkipPong(c.br)
		switch {
		case err != nil:
			c.leave()
			return
		case pong:
			c.hear()
		case !c.readMessage():
			c.leave()
			return
		}
		if c.watch != nil && c.quiet() && c.park() {
			return
		}
	}
}

// readerLinger is how long a reader waits for a client's next frame
// before it parks, at most a quarter of the heartbeat: a client that sends
// often (publish ops) keeps a reader instead of paying a goroutine and a
// watcher round trip per message, while the pongs of an idle one, a
// heartbeat apart, find it parked.
const readerLinger = 200 * time.Millisecond

// quiet waits up to readerLinger for the client's next frame and reports
// whether none began to come, nothing being buffered.
func (c *wsConn) quiet() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	silence := c.heardAt().Add(c.wait)
	linger := time.Now().Add(min(readerLinger, c.every/4))
	if silence.Before(linger) {
		linger = silence
	}
	c.conn.SetReadDeadline(linger)
	_, err := c.br.Peek(1)
	c.conn.SetReadDeadline(silence)
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && c.br.Buffered() == 0
}

// park parks the connection with the idle watcher, which starts read
// once the client sends. It reports false when there is no watcher or the
// connection could not be parked. Only the reader parks, with nothing
// buffered in br (gorilla reads the connection through br alone).
func (c *wsConn) park() bool {
	return c.watch != nil && c.watch.Park() == nil
}

// monoEpoch is the origin of wsConn.heard, a monotonic clock reading.
var monoEpoch = time.Now()

// hear notes that a whole frame came from the client, and moves the read
// deadline of a reader waiting for the next one.
func (c *wsConn) hear() {
	now := time.Now()
	c.heard.Store(int64(now.Sub(monoEpoch)))
	c.conn.SetReadDeadline(now.Add(c.wait))
}

// heardAt is when the client's last frame was read.
func (c *wsConn) heardAt() time.Time {
	return monoEpoch.Add(time.Duration(c.heard.Load()))
}

// wsMessageLimit is the largest client message in bytes, on the wire
// and once inflated: a publish op of MaxPayload (twice that for escapes
// and base64) and its fields.
func (s *Server) wsMessageLimit() int { return 2*s.cfg.MaxPayload + 4096 }

// disconnectTooBig closes a connection whose client sent a message over
// wsMessageLimit.
var disconnectTooBig = edge.Disconnect{Code: websocket.CloseMessageTooBig, Reason: "message_too_big"}

// readMessage reads one message and runs it. It reports false when the
// connection ended.
//
// gorilla's read limit counts the bytes on the wire, which a compressed
// message (permessage-deflate) may inflate a thousandfold; the message is
// read here through a limit on its inflated bytes, so no message costs
// more memory than the limit, and one over it closes the connection with
// 1009 as soon as the limit is passed, without inflating the rest.
func (c *wsConn) readMessage() bool {
	kind, r, err := c.conn.NextReader()
	if err != nil {
		return false
	}
	frame, err := readAtMost(r, c.s.wsMessageLimit(), wsReadBuffer, nil)
	if errors.Is(err, errTooBig) {
		if c.turn.Lock() {
			c.disconnect(disconnectTooBig)
			c.end()
			c.turn.Unlock()
		}
		return false
	}
	if err != nil {
		return false
	}
	c.hear()
	return c.handle(kind, frame)
}

// handle runs one client frame. It reports false when the connection
// ended.
func (c *wsConn) handle(kind int, frame []byte) bool {
	if kind != websocket.TextMessage {
		return c.reply(errorFrame(nil, fmt.Errorf("%w: binary frames are not supported; send JSON text frames", edge.ErrBadRequest)))
	}
	op, err := parseOp(frame, c.s.cfg.MaxPayload)
	if err == nil {
		err = c.limit(op.Op)
	}
	if err != nil {
		return c.reply(errorFrame(op.Ref, err))
	}
	switch op.Op {
	case opSubscribe:
		if !c.turn.Lock() {
			return false
		}
		defer c.turn.Unlock()
		if err := c.s.access.subscribe(c.claims, op.Channel); err != nil {
			return c.sendOrEnd(errorFrame(op.Ref, err))
		}
		if op.since != nil {
			c.s.metrics.Resumed(metrics.WS)
		}
		hear := c.hears
		if op.Presence != nil {
			hear = *op.Presence
		}
		c.sess.HearPresence(hear)
		c.sess.SetDelta(c.delta || op.Delta != "")
		conflate := c.conflate
		if op.Conflate != "" {
			conflate = op.conflate
		}
		c.sess.SetConflate(conflate)
		if !c.join(op.Channel, op.since, op.Ref) {
			c.end()
			return false
		}
		return true
	case opUnsubscribe:
		if err := c.sess.Unsubscribe(op.Channel); err != nil {
			return c.reply(errorFrame(op.Ref, err))
		}
		if !c.turn.Lock() {
			return false
		}
		defer c.turn.Unlock()
		c.cursor.Delete(op.Channel)
		return c.sendOrEnd(serverFrame{Type: "unsubscribed", Ref: op.Ref, Channel: op.Channel}.encode())
	case opRefresh:
		return c.refresh(op)
	case opPing:
		return c.pong(op.Ref)
	}
	if err := c.s.access.publishAs(c.claims, op.Channel, c.local, true); err != nil {
		return c.reply(errorFrame(op.Ref, err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	id, replayed, err := c.s.publish(ctx, metrics.WebSocket, edge.Publication{Channel: op.Channel, Event: op.Event, Data: op.payload, Key: op.Key}, op.IdempotencyKey)
	if err != nil {
		return c.reply(errorFrame(op.Ref, err))
	}
	return c.reply(serverFrame{Type: "published", Ref: op.Ref, Channel: op.Channel, ID: id.String(), Replayed: replayed}.encode())
}

// limit applies the connection's rates to subscribe and publish ops.
func (c *wsConn) limit(op string) error {
	b, rate, what := &c.subs, c.s.cfg.SubscribeRate, "subscribes on one connection"
	switch op {
	case opSubscribe:
	case opPublish:
		b, rate, what = &c.pubs, c.s.cfg.ClientPublishRate, "publishes on one connection"
	default:
		return nil
	}
	if ok, wait := b.take(float64(rate), time.Now()); !ok {
		return rateLimited(what, float64(rate), wait)
	}
	return nil
}

// refresh replaces the connection's token with a fresh one for the same
// subject, moving the expiry; subscriptions are kept, later ones are
// checked against the new token. Only the reader touches claims.
func (c *wsConn) refresh(op clientOp) bool {
	claims, err := c.s.access.verify(context.Background(), op.Token)
	if err == nil && c.claims != nil && claims.Subject != c.claims.Subject {
		err = fmt.Errorf("%w: the new token is for another subject", edge.ErrForbidden)
	}
	if err != nil {
		return c.reply(errorFrame(op.Ref, err))
	}
	if !c.turn.Lock() {
		return false
	}
	defer c.turn.Unlock()
	c.claims = claims
	c.expireAt(claims.Expiry)
	return c.sendOrEnd(serverFrame{Type: "refreshed", Ref: op.Ref}.encode())
}

// pong answers a client's ping. The heartbeat after it is skipped: the
// client that pings is evidently there, and a browser pinging every
// heartbeat would otherwise wake its radio twice as often.
func (c *wsConn) pong(ref json.RawMessage) bool {
	if !c.turn.Lock() {
		return false
	}
	defer c.turn.Unlock()
	c.ponged = true
	return c.sendOrEnd(serverFrame{Type: "pong", Ref: ref}.encode())
}

// reply sends one control frame holding the turn. It reports false when
// the connection ended.
func (c *wsConn) reply(frame []byte) bool {
	if !c.turn.Lock() {
		return false
	}
	defer c.turn.Unlock()
	return c.sendOrEnd(frame)
}

// sendOrEnd sends frame, ending the connection when that fails. The caller
// holds the turn.
func (c *wsConn) sendOrEnd(frame []byte) bool {
	if c.send(frame) != nil {
		c.end()
		return false
	}
	return true
}

// flush is the connection's write turn: queued frames, a due ping, or the
// end of the connection.
func (c *wsConn) flush() {
	if c.gone.Load() {
		c.end()
		return
	}
	fp := c.take()
	n, first := countMessages(*fp)
	err := c.writeFrames(*fp)
	putFrames(fp)
	if err == nil {
		c.delivered(n, first)
	}
	if d, closed := c.sess.Closed(); closed && err == nil {
		c.disconnect(d)
		c.end()
		return
	}
	if err == nil && c.heartbeatDue() {
		// A parked reader has no read deadline: the heartbeat keeps it,
		// ending the connection once the client was silent for wait, and
		// comes back early for that when wait ends before the next one.
		silent := time.Since(c.heardAt())
		if silent >= c.wait {
			c.end()
			return
		}
		if left := c.wait - silent; left < c.every {
			c.beat.Reset(left)
		}
		if c.ponged {
			c.ponged = false
		} else {
			err = c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout))
		}
	}
	if err != nil {
		c.fail(err)
	}
}

// join subscribes to channel, writes its history after since, and
// acknowledges with the position. A refused subscription is answered with
// an error frame; join reports false only when the connection must end.
func (c *wsConn) join(channel string, since *edge.ID, ref json.RawMessage) bool {
	j, err := c.sess.Start(context.Background(), channel, since)
	if err != nil {
		return c.refuse(err, ref)
	}
	return c.finish(j, ref)
}

// finish completes a started join: it writes the channel's history and
// acknowledges with the position. It reports false only when the
// connection must end.
func (c *wsConn) finish(j edge.Joining, ref json.RawMessage) bool {
	channel := j.Channel()
	pos, err := c.sess.Finish(context.Background(), j, func(p edge.Page) error {
		if j.Conflate() > 0 {
			p = edge.ConflatePage(p)
		}
		if p.Gap {
			c.s.metrics.Gap()
			if err := c.send(serverFrame{Type: "gap", Channel: channel}.encode()); err != nil {
				return err
			}
		}
		frames := make([]*edge.Frame, len(p.Messages))
		for i, m := range p.Messages {
			frames[i] = edge.NewFrame(m)
		}
		if err := c.writeFrames(frames); err != nil {
			return err
		}
		c.s.metrics.Delivered(metrics.WS, len(frames))
		return nil
	})
	if err != nil {
		return c.refuse(err, ref)
	}
	c.cursor.Set(channel, pos)
	return c.send(serverFrame{Type: "subscribed", Ref: ref, Channel: channel, ID: pos.String()}.encode()) == nil
}

// refuse answers a failed join with an error frame, or ends the
// connection when the session closed. It reports false when the
// connection must end.
func (c *wsConn) refuse(err error, ref json.RawMessage) bool {
	if d, closed := c.sess.Closed(); closed {
		c.disconnect(d)
		return false
	}
	var e *edge.Error
	if !errors.As(err, &e) {
		c.s.log.Warn("websocket join failed", "err", err)
	}
	return c.send(errorFrame(ref, err)) == nil
}

// writeFrames sends frames: one message encoded once for all subscribers
// or, for several, JSON arrays that coalesce them into few WebSocket
// frames. A connection without compression writes a single message's
// WebSocket frame, the same bytes for every subscriber (a server's frames
// are not masked), straight to its connection, around gorilla's writer:
// the turn orders every write, gorilla's too, so no frame of gorilla's is
// ever cut by one written here.
func (c *wsConn) writeFrames(frames []*edge.Frame) error {
	if len(frames) == 0 {
		return nil
	}
	if len(frames) == 1 {
		c.moveCursor(frames[0])
		if c.raw {
			return c.direct.write(frameWS(frames[0]))
		}
		c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		return c.conn.WritePreparedMessage(framePrepared(frames[0]))
	}
	c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	bp := bufPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 2*maxArrayBytes {
			bufPool.Put(bp)
		}
	}()
	for len(frames) > 0 {
		n, size := 0, 0
		for n < len(frames) && (n == 0 || size+len(frameJSON(frames[n])) < maxArrayBytes) {
			size += len(frameJSON(frames[n])) + 1
			n++
		}
		*bp = appendFrameArray((*bp)[:0], frames[:n])
		if err := c.conn.WriteMessage(websocket.TextMessage, *bp); err != nil {
			return err
		}
		for _, f := range frames[:n] {
			c.moveCursor(f)
		}
		frames = frames[n:]
	}
	return nil
}

// moveCursor notes that f was written: a message moves the channel's
// position, a presence frame (not in history) does not.
func (c *wsConn) moveCursor(f *edge.Frame) {
	if !f.IsPresence() {
		c.cursor.Set(f.Channel, f.ID)
	}
}

func (c *wsConn) send(frame []byte) error {
	c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.conn.WriteMessage(websocket.TextMessage, frame)
}

// disconnect tells the client why the connection ends, with its cursor and
// a jittered reconnect delay, then closes with the same code.
func (c *wsConn) disconnect(d edge.Disconnect) {
	reconnect := d.Reconnect()
	c.send(serverFrame{
		Type: "disconnect", Code: d.Code, Reason: d.Reason, Reconnect: &reconnect,
		RetryMs: c.s.reconnectDelay(d).Milliseconds(), Cursor: c.cursor.String(),
	}.encode())
	c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(d.Code, d.Reason), time.Now().Add(writeTimeout))
}

// offersDeflate reports whether r offers permessage-deflate, which
// gorilla then negotiates (Upgrader.EnableCompression): a token it only
// finds in the header.
func offersDeflate(r *http.Request) bool {
	for _, v := range r.Header.Values("Sec-Websocket-Extensions") {
		if strings.Contains(strings.ToLower(v), "permessage-deflate") {
			return true
		}
	}
	return false
}

// frameWS returns the frame as a whole WebSocket text frame, unmasked and
// uncompressed, built once per frame.
func frameWS(f *edge.Frame) []byte {
	b, _ := f.Encoded(edge.EncodingWSFrame, func(*edge.Message) any {
		return hijack.AppendTextFrame(nil, frameJSON(f))
	}).([]byte)
	return b
}

// framePrepared returns the frame as a prepared WebSocket message, built
// once per frame (with its compressed forms built once per setting).
func framePrepared(f *edge.Frame) *websocket.PreparedMessage {
	pm, _ := f.Encoded(edge.EncodingWS, func(*edge.Message) any {
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, frameJSON(f))
		if err != nil {
			panic(err) // only for an invalid message type
		}
		return pm
	}).(*websocket.PreparedMessage)
	return pm
}
