package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// maxKeptBuffer is the largest read buffer a subscriber keeps between
// frames; a larger one is dropped after use.
const maxKeptBuffer = 64 << 10

// dialWS opens a WebSocket to u within connectTimeout, on the subscriber's
// dialer.
func (s *subscriber) dialWS(ctx context.Context, u string) (*websocket.Conn, error) {
	dialCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	d := *s.env.ws[s.id%len(s.env.ws)]
	dial := d.NetDialContext
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return s.meter.wrap(c), nil
	}
	conn, resp, err := d.DialContext(dialCtx, u, nil)
	if err != nil {
		if resp != nil {
			s.refusedBy(resp.StatusCode, resp.Header)
			return nil, fmt.Errorf("websocket: %s: %w", resp.Status, err)
		}
		return nil, fmt.Errorf("websocket: %w", err)
	}
	return conn, nil
}

// connectWS subscribes over WebSocket: ready on the "subscribed" frame,
// then every message object (one per frame or an array of them) counts.
// Nchan's subscribers are ready after the handshake (see sub_nchan.go).
// With a cursor (--reconnect) it subscribes with since=, and the history
// the edge sends before the subscribed frame counts too.
func (s *subscriber) connectWS(ctx context.Context) (receive func() error, err error) {
	var since []string
	if len(s.cursor) > 0 {
		since = []string{"since", string(s.cursor)}
	}
	u := s.env.subscribeURL(s.node, "ws", channelName(s.channel), since...)
	if s.env.target == targetNchan {
		u = s.env.nchanURL(s.node, "ws", nchanSubscribePath(channelName(s.channel)))
	}
	conn, err := s.dialWS(ctx, u)
	if err != nil {
		return nil, err
	}
	closeConn := closeOnDone(ctx, conn)
	if s.env.target == targetNchan {
		return s.receiveNchanWS(conn, closeConn), nil
	}
	var buf []byte
	conn.SetReadDeadline(time.Now().Add(connectTimeout))
	for {
		if buf, err = readWS(conn, buf[:0]); err != nil {
			closeConn()
			return nil, fmt.Errorf("websocket: waiting for subscribed: %w", err)
		}
		if bytes.Contains(buf, []byte(`"type":"subscribed"`)) {
			s.keepCursor(lastQuoted(buf, idField))
			break
		}
		if bytes.Contains(buf, []byte(`"type":"error"`)) || bytes.Contains(buf, []byte(`"type":"disconnect"`)) {
			closeConn()
			return nil, fmt.Errorf("websocket: edge answered %s", clip(buf))
		}
		s.frameWS(buf)
	}
	conn.SetReadDeadline(time.Time{})
	return func() error {
		defer closeConn()
		buf := buf[:0]
		for {
			if buf, err = readWS(conn, buf[:0]); err != nil {
				return fmt.Errorf("websocket: %w", err)
			}
			if !s.frameWS(buf) {
				return fmt.Errorf("websocket: edge disconnected: %s", clip(buf))
			}
			if cap(buf) > maxKeptBuffer {
				buf = nil
			}
		}
	}, nil
}

// Fields of WebSocket frames that frameWS looks for.
var (
	idField      = []byte(`"id":"`)
	gapFrame     = []byte(`"type":"gap"`)
	disconnected = []byte(`"type":"disconnect"`)
)

// frameWS accounts for one WebSocket frame of the edge and reports
// whether the connection goes on: false for a disconnect frame, whose
// cursor and retry_ms it keeps for a reconnect.
func (s *subscriber) frameWS(frame []byte) bool {
	now := time.Now().UnixNano()
	if s.receiveFrame(frame, now) > 0 {
		if s.env.reconnect {
			s.keepCursor(lastQuoted(frame, idField))
		}
		return true
	}
	switch {
	case bytes.Contains(frame, gapFrame):
		s.gaps++
	case bytes.Contains(frame, disconnected):
		if cursor, ok := quotedAfter(frame, cursorField); ok {
			s.keepCursor(cursor)
		}
		s.adviseRetryMs(frame)
		return false
	}
	return true
}

// lastQuoted returns the JSON string value that follows the last field
// (which ends with the opening quote) in b, as quotedAfter does for the
// first; nil when there is none.
func lastQuoted(b, field []byte) []byte {
	i := bytes.LastIndex(b, field)
	if i < 0 {
		return nil
	}
	v, _ := quotedAfter(b[i:], field)
	return v
}

// readWS appends the next text frame of c to buf.
func readWS(c *websocket.Conn, buf []byte) ([]byte, error) {
	for {
		kind, r, err := c.NextReader()
		if err != nil {
			return buf, err
		}
		if kind == websocket.TextMessage {
			return readAll(r, buf)
		}
	}
}

// readAll appends everything r holds to b.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// dataField starts the payload of a message object in a WebSocket frame.
var dataField = []byte(`"data":"`)

// scanMessages calls fn with the data of every message object of a
// WebSocket frame — one object or an array of them — and returns how many
// it found. Control frames ({"type":…}) carry no data field. Data is the
// JSON string's content as it stands, escapes included: plain edge-bench
// payloads hold none, and parsePayload reads dashboard payloads escaped.
func scanMessages(frame []byte, fn func([]byte)) int {
	n := 0
	for {
		i := bytes.Index(frame, dataField)
		if i < 0 {
			return n
		}
		frame = frame[i+len(dataField):]
		j := stringEnd(frame)
		if j < 0 {
			return n
		}
		fn(frame[:j])
		n++
		frame = frame[j+1:]
	}
}

// stringEnd returns the index of the quote that ends the JSON string
// whose content starts b, or -1 when b holds none.
func stringEnd(b []byte) int {
	for off := 0; ; {
		j := bytes.IndexByte(b[off:], '"')
		if j < 0 {
			return -1
		}
		j += off
		k := j
		for k > 0 && b[k-1] == '\\' {
			k--
		}
		if (j-k)%2 == 0 {
			return j
		}
		off = j + 1
	}
}

// clip shortens b for an error message.
func clip(b []byte) string {
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
