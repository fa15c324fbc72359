package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// With --target centrifugo, edge-bench loads Centrifugo v6 as
// testdata/centrifugo.json (memory engine) or testdata/centrifugo-redis.json
// (Redis engine) configures it: anonymous clients may connect without a
// token and subscribe to channels outside any namespace, which keep 1,000
// messages of history for 300 s with recovery forced on; the server API
// takes the key of --centrifugo-api-key. Only WebSocket subscribers, in
// Centrifugo's bidirectional protocol (v2, JSON):
//
//   - The subscriber dials /connection/websocket, sends
//     {"id":1,"connect":{"name":"edge-bench"}} and waits for the reply
//     with id 1, then sends {"id":2,"subscribe":{"channel":"bench-N"}} and
//     is ready on the reply with id 2. A reply with an "error" member fails
//     it.
//   - Every text frame holds one or more replies, one JSON object a line.
//     A publication is {"push":{"channel":…,"pub":{"data":…,"offset":…}}}
//     whose data is the JSON string the publisher sent: the edge-bench
//     payload in quotes.
//   - An empty reply {} is the server's ping; the subscriber answers {}
//     (Centrifugo closes a connection that does not answer within its
//     client.pong_timeout).
//   - A push of "unsubscribe" or "disconnect" ends the subscriber: it
//     would not receive the channel any more.
//
// The publisher sends POST /api/publish with the header X-API-Key and the
// body {"channel":"bench-N","data":"<payload>"}; Centrifugo answers 200
// with {"result":{…}}, or with {"error":{"code":…,"message":…}} (still 200)
// when it refused the publish. edge-bench payloads are printable ASCII
// without quotes or backslashes, so "<payload>" is the JSON string of the
// payload as it is, and a subscriber reads it back between the quotes.

// Paths of Centrifugo's endpoints.
const (
	centrifugoWSPath      = "/connection/websocket"
	centrifugoPublishPath = "/api/publish"
)

// centrifugoPing is Centrifugo's ping, and the pong that answers it.
var centrifugoPing = []byte("{}")

// Markers of the lines of a Centrifugo frame.
var (
	centrifugoPush        = []byte(`{"push":`)
	centrifugoPub         = []byte(`"pub":`)
	centrifugoUnsubscribe = []byte(`"unsubscribe":`)
	centrifugoDisconnect  = []byte(`"disconnect":`)
)

// centrifugoReply is a reply to a command of a subscriber; only its id and
// error matter to edge-bench.
type centrifugoReply struct {
	ID    uint32           `json:"id"`
	Error *centrifugoError `json:"error"`
}

// centrifugoError is the error of a reply or of a server API answer.
type centrifugoError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// centrifugoWS is one WebSocket subscriber of Centrifugo, used by one
// goroutine at a time: that goroutine reads the connection and is its
// only writer (of commands, then of pongs).
type centrifugoWS struct {
	s    *subscriber
	conn *websocket.Conn
	buf  []byte // the last frame read
}

// connectCentrifugoWS connects and subscribes a WebSocket subscriber of
// Centrifugo, and returns the loop that then receives until ctx is done or
// the connection ends.
func (s *subscriber) connectCentrifugoWS(ctx context.Context) (receive func() error, err error) {
	conn, err := s.dialWS(ctx, s.env.nchanURL(s.node, "ws", centrifugoWSPath))
	if err != nil {
		return nil, err
	}
	closeConn := closeOnDone(ctx, conn)
	c := &centrifugoWS{s: s, conn: conn}
	conn.SetReadDeadline(time.Now().Add(connectTimeout))
	subscribe := appendCentrifugoSubscribe(nil, 2, channelName(s.channel))
	if err := c.command(1, []byte(`{"id":1,"connect":{"name":"edge-bench"}}`)); err != nil {
		closeConn()
		return nil, fmt.Errorf("websocket: connect: %w", err)
	}
	if err := c.command(2, subscribe); err != nil {
		closeConn()
		return nil, fmt.Errorf("websocket: subscribe: %w", err)
	}
	conn.SetReadDeadline(time.Time{})
	return func() error {
		defer closeConn()
		for {
			if err := c.next(0); err != nil {
				return fmt.Errorf("websocket: %w", err)
			}
		}
	}, nil
}

// appendCentrifugoSubscribe appends the subscribe command id to channel
// to b. Channel names of edge-bench need no JSON escaping.
func appendCentrifugoSubscribe(b []byte, id uint32, channel string) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, uint64(id), 10)
	b = append(b, `,"subscribe":{"channel":"`...)
	b = append(b, channel...)
	return append(b, `"}}`...)
}

// command sends cmd and reads frames, handling what they hold, until the
// reply with id, which must not be an error.
func (c *centrifugoWS) command(id uint32, cmd []byte) error {
	if err := c.write(cmd); err != nil {
		return err
	}
	return c.next(id)
}

// next reads frames and handles every line of each, until a frame held
// the reply with id wait (with wait 0, after one frame).
func (c *centrifugoWS) next(wait uint32) error {
	for {
		var err error
		if cap(c.buf) > maxKeptBuffer {
			c.buf = nil
		}
		if c.buf, err = readWS(c.conn, c.buf[:0]); err != nil {
			return err
		}
		got, err := c.handle(c.buf, wait, time.Now().UnixNano())
		if err != nil || got || wait == 0 {
			return err
		}
	}
}

// handle handles every line of frame, received at now: it counts
// publications, answers pings, and reports whether it held the reply with
// id wait (not 0). A reply with an error, or a push that ends the
// subscription, is an error.
func (c *centrifugoWS) handle(frame []byte, wait uint32, now int64) (got bool, err error) {
	for len(frame) > 0 {
		var line []byte
		line, frame, _ = bytes.Cut(frame, []byte{'\n'})
		switch {
		case len(line) == 0:
		case bytes.HasPrefix(line, centrifugoPush):
			if bytes.Contains(line, centrifugoPub) {
				if scanMessages(line, func(p []byte) { c.s.receive(p, now) }) == 0 {
					c.s.unparsed++
				}
				continue
			}
			if bytes.Contains(line, centrifugoUnsubscribe) || bytes.Contains(line, centrifugoDisconnect) {
				return got, fmt.Errorf("centrifugo ended the subscription: %s", clip(line))
			}
		case bytes.Equal(line, centrifugoPing):
			if err := c.write(centrifugoPing); err != nil {
				return got, fmt.Errorf("pong: %w", err)
			}
		default:
			var r centrifugoReply
			if err := json.Unmarshal(line, &r); err != nil {
				return got, fmt.Errorf("centrifugo sent %s: %w", clip(line), err)
			}
			if r.Error != nil {
				return got, fmt.Errorf("centrifugo answered %d: %s (code %d)", r.ID, r.Error.Message, r.Error.Code)
			}
			got = got || (wait != 0 && r.ID == wait)
		}
	}
	return got, nil
}

// write sends one command frame, within connectTimeout.
func (c *centrifugoWS) write(b []byte) error {
	c.conn.SetWriteDeadline(time.Now().Add(connectTimeout))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

// errCentrifugoRefused is wrapped by the error of a publish that
// Centrifugo's server API answered with an error.
var errCentrifugoRefused = errors.New("centrifugo refused the publish")

// appendCentrifugoPublish appends the server API's publish request of
// payload to channel to b (see the wire forms above for why no escaping
// is needed).
func appendCentrifugoPublish(b []byte, channel string, payload []byte) []byte {
	b = append(b, `{"channel":"`...)
	b = append(b, channel...)
	b = append(b, `","data":"`...)
	b = append(b, payload...)
	return append(b, `"}`...)
}

// publishCentrifugo publishes payload to channel ch with the server API
// of Centrifugo node node and returns once it answered.
func (p *publisher) publishCentrifugo(ctx context.Context, node, ch int, payload []byte) error {
	body := appendCentrifugoPublish(make([]byte, 0, len(payload)+64), channelName(ch), payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.nodes[node].urls[ch], bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", p.centrifugoKey)
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Errorf("POST %s: read answer: %w", req.URL.Path, err)
	}
	return checkCentrifugoAnswer(resp.Status, resp.StatusCode, answer)
}

// checkCentrifugoAnswer checks the server API's answer to a publish.
func checkCentrifugoAnswer(status string, code int, body []byte) error {
	if code != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", centrifugoPublishPath, status, clip(body))
	}
	var a struct {
		Result json.RawMessage  `json:"result"`
		Error  *centrifugoError `json:"error"`
	}
	switch err := json.Unmarshal(body, &a); {
	case err != nil:
		return fmt.Errorf("POST %s: answer %s: %w", centrifugoPublishPath, clip(body), err)
	case a.Error != nil:
		return fmt.Errorf("POST %s: %w: %s (code %d)", centrifugoPublishPath, errCentrifugoRefused, a.Error.Message, a.Error.Code)
	case a.Result == nil:
		return fmt.Errorf("POST %s: answer without a result: %s", centrifugoPublishPath, clip(body))
	}
	return nil
}
