package transports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
)

// maxArrayBytes bounds a WebSocket frame that carries several messages.
const maxArrayBytes = 256 << 10

// wsCommand is work the reader hands to the writer: joins and leaves run
// on the writer because joining writes history.
type wsCommand struct {
	op    string // opSubscribe, opUnsubscribe, or "" for a plain reply
	ch    string
	since *edge.ID
	ref   json.RawMessage
	reply []byte
}

// wsConn is one WebSocket connection: the reader goroutine parses client
// operations; the writer (the handler goroutine) owns every write.
type wsConn struct {
	s         *Server
	conn      *websocket.Conn
	sess      *edge.Session
	heartbeat time.Duration
	ctrl      chan wsCommand
	cursor    resume.Cursor // position of what was written, per channel
}

// serveWS upgrades the request and serves the WebSocket protocol.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request, req subscribeRequest) {
	sess, err := s.hub.NewSession()
	if err != nil {
		writeError(w, err)
		return
	}
	defer sess.Release()
	s.hijacked.Add(1)
	defer s.hijacked.Done()
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	conn.SetReadLimit(int64(2*s.cfg.MaxPayload + 4096))
	c := &wsConn{s: s, conn: conn, sess: sess, heartbeat: req.heartbeat, ctrl: make(chan wsCommand, 32)}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		c.read()
	}()
	c.write(req, readerDone)
	conn.Close()
	<-readerDone
}

// read parses client frames until the connection fails or closes.
func (c *wsConn) read() {
	wait := 2*c.heartbeat + 10*time.Second
	c.conn.SetReadDeadline(time.Now().Add(wait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(wait))
	})
	for {
		kind, frame, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		c.conn.SetReadDeadline(time.Now().Add(wait))
		cmd := c.handle(kind, frame)
		select {
		case c.ctrl <- cmd:
		case <-c.sess.Done():
			return
		}
	}
}

// handle turns one client frame into work for the writer.
func (c *wsConn) handle(kind int, frame []byte) wsCommand {
	if kind != websocket.TextMessage {
		return wsCommand{reply: errorFrame(nil, fmt.Errorf("%w: binary frames are not supported; send JSON text frames", edge.ErrBadRequest))}
	}
	op, err := parseOp(frame, c.s.cfg.MaxPayload)
	if err != nil {
		return wsCommand{reply: errorFrame(op.Ref, err)}
	}
	switch op.Op {
	case opSubscribe, opUnsubscribe:
		return wsCommand{op: op.Op, ch: op.Channel, since: op.since, ref: op.Ref}
	}
	if c.s.cfg.PublishKey != "" {
		return wsCommand{reply: errorFrame(op.Ref, fmt.Errorf("%w: publishing over WebSocket is off while a publish key is set; use POST /v1/publish", edge.ErrForbidden))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	id, err := c.s.broker.Publish(ctx, op.Channel, op.Event, op.payload)
	if err != nil {
		return wsCommand{reply: errorFrame(op.Ref, err)}
	}
	return wsCommand{reply: serverFrame{Type: "published", Ref: op.Ref, Channel: op.Channel, ID: id.String()}.encode()}
}

// write is the connection's only writer: it joins the request's channels,
// then sends queued frames, replies and pings until the reader ends or the
// session closes.
func (c *wsConn) write(req subscribeRequest, readerDone <-chan struct{}) {
	for _, ch := range req.channels {
		if !c.join(ch, req.since(ch), nil) {
			return
		}
	}
	ping := time.NewTicker(c.heartbeat)
	defer ping.Stop()
	var frames []*edge.Frame
	for {
		var err error
		select {
		case <-readerDone:
			return
		case cmd := <-c.ctrl:
			err = c.command(cmd)
		case <-ping.C:
			err = c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout))
		case <-c.sess.Notify():
			frames = c.sess.Take(frames[:0])
			err = c.writeFrames(frames)
			clear(frames)
			if d, closed := c.sess.Closed(); closed && err == nil {
				c.disconnect(d)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (c *wsConn) command(cmd wsCommand) error {
	switch cmd.op {
	case opSubscribe:
		if !c.join(cmd.ch, cmd.since, cmd.ref) {
			return errors.New("join failed")
		}
		return nil
	case opUnsubscribe:
		if err := c.sess.Unsubscribe(cmd.ch); err != nil {
			return c.send(errorFrame(cmd.ref, err))
		}
		c.cursor.Delete(cmd.ch)
		return c.send(serverFrame{Type: "unsubscribed", Ref: cmd.ref, Channel: cmd.ch}.encode())
	}
	return c.send(cmd.reply)
}

// join subscribes to channel, writes its history after since, and
// acknowledges with the position. A refused subscription is answered with
// an error frame; join reports false only when the connection must end.
func (c *wsConn) join(channel string, since *edge.ID, ref json.RawMessage) bool {
	pos, err := c.sess.Join(context.Background(), channel, since, func(p edge.Page) error {
		if p.Gap {
			if err := c.send(serverFrame{Type: "gap", Channel: channel}.encode()); err != nil {
				return err
			}
		}
		frames := make([]*edge.Frame, len(p.Messages))
		for i, m := range p.Messages {
			frames[i] = edge.NewFrame(m)
		}
		return c.writeFrames(frames)
	})
	if err != nil {
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
	c.cursor.Set(channel, pos)
	return c.send(serverFrame{Type: "subscribed", Ref: ref, Channel: channel, ID: pos.String()}.encode()) == nil
}

// writeFrames sends frames: one prepared message (encoded once for all
// subscribers) or, for several, JSON arrays that coalesce them into few
// WebSocket frames.
func (c *wsConn) writeFrames(frames []*edge.Frame) error {
	if len(frames) == 0 {
		return nil
	}
	c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if len(frames) == 1 {
		c.cursor.Set(frames[0].Channel, frames[0].ID)
		return c.conn.WritePreparedMessage(framePrepared(frames[0]))
	}
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
			c.cursor.Set(f.Channel, f.ID)
		}
		frames = frames[n:]
	}
	return nil
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
