package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/websocket"
)

// With --target nchan, edge-bench loads nginx with the Nchan module, as
// testdata/nchan.conf configures it: subscribers on /sub/<channel>
// (WebSocket upgrade, Accept: text/event-stream, or a plain GET for
// long-poll), publish with POST /pub/<channel>. Nchan's wire forms:
//
//   - WebSocket: each message is one text frame whose payload is the
//     message itself; nothing is sent on subscribing.
//   - SSE: ": hi" and an empty line once subscribed, then per message
//     "id: <time>:<tag>" and one "data: " line per line of the message;
//     edge-bench payloads are one line, so one data: line is one message.
//   - long-poll: each answer's body is one message; its Last-Modified and
//     Etag headers go back as If-Modified-Since and If-None-Match on the
//     next poll, which answers from the channel's history what came since.
//
// A WebSocket subscriber is ready once the handshake is over, an SSE one on
// ": hi", a long-poll one once it has sent its first poll (without a
// cursor, which Nchan holds until the next message; a first poll with a
// made-up cursor, one that names no message, trips an assertion in
// Nchan 1.3.6's spool_fetch_msg and kills the worker). Nchan's channel
// info (GET /pub/<channel>) is no readiness signal: with several workers
// its subscriber count lags and drifts.

// nchanSubscribePath returns the path Nchan subscribes to channel on.
func nchanSubscribePath(channel string) string { return "/sub/" + url.PathEscape(channel) }

// nchanPublishPath returns the path of Nchan's publisher of channel.
func nchanPublishPath(channel string) string { return "/pub/" + url.PathEscape(channel) }

// nchanHi is the comment Nchan's SSE stream starts with.
var nchanHi = []byte(": hi")

// receiveNchanWS returns the receive loop of a WebSocket subscriber of
// Nchan: every text frame is one message.
func (s *subscriber) receiveNchanWS(conn *websocket.Conn, closeConn func()) func() error {
	return func() error {
		defer closeConn()
		var buf []byte
		var err error
		for {
			if buf, err = readWS(conn, buf[:0]); err != nil {
				return fmt.Errorf("websocket: %w", err)
			}
			s.receive(buf, time.Now().UnixNano())
			if cap(buf) > maxKeptBuffer {
				buf = nil
			}
		}
	}
}

// nchanPoller is the state of one long-poll subscriber of Nchan, used by
// one goroutine at a time.
type nchanPoller struct {
	s        *subscriber
	ctx      context.Context
	path     string
	c        *pollConn // nil between a closed connection and the next dial
	modified string    // Last-Modified of the last answer, "" before the first
	etag     string    // Etag of the last answer
	body     []byte    // of the last answer
}

// connectNchanPoll sends the first long-poll of a subscriber of Nchan
// and returns the loop that reads its answer and polls again with the
// cursor of each answer.
func (s *subscriber) connectNchanPoll(ctx context.Context) (receive func() error, err error) {
	p := &nchanPoller{s: s, ctx: ctx, path: nchanSubscribePath(channelName(s.channel))}
	if err := p.send(); err != nil {
		p.close()
		return nil, err
	}
	return p.receive, nil
}

// send sends the next poll, dialing first when the last answer closed the
// connection.
func (p *nchanPoller) send() error {
	if p.c == nil {
		var err error
		if p.c, err = p.s.dialPoll(p.ctx); err != nil {
			return err
		}
	}
	p.c.conn.SetDeadline(time.Now().Add(pollHold + connectTimeout))
	p.c.req = appendNchanPoll(p.c.req[:0], p.s.host(), p.path, p.modified, p.etag)
	if _, err := p.c.conn.Write(p.c.req); err != nil {
		return fmt.Errorf("poll: send request: %w", err)
	}
	return nil
}

// appendNchanPoll appends a long-poll request of Nchan to b, with the
// cursor modified, etag unless modified is "".
func appendNchanPoll(b []byte, host, path, modified, etag string) []byte {
	b = append(b, "GET "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	if modified != "" {
		b = append(b, "\r\nIf-Modified-Since: "...)
		b = append(b, modified...)
		b = append(b, "\r\nIf-None-Match: "...)
		b = append(b, etag...)
	}
	return append(b, "\r\nUser-Agent: edge-bench\r\n\r\n"...)
}

// receive reads answers and polls again until ctx is done or a poll
// fails, and closes the connection.
func (p *nchanPoller) receive() error {
	defer p.close()
	for {
		if err := p.read(); err != nil {
			return err
		}
		if err := p.send(); err != nil {
			return err
		}
	}
}

// read reads the answer of the poll sent last and accounts for it.
func (p *nchanPoller) read() error {
	resp, err := http.ReadResponse(p.c.r, nil)
	if err != nil {
		return fmt.Errorf("poll: read answer: %w", err)
	}
	if cap(p.body) > maxKeptBuffer {
		p.body = nil
	}
	msg, keep, err := readNchanPoll(resp, p.body[:0])
	p.body = msg
	if !keep {
		p.close()
	}
	if err != nil || msg == nil {
		return err
	}
	p.modified, p.etag = resp.Header.Get("Last-Modified"), resp.Header.Get("Etag")
	p.s.receive(msg, time.Now().UnixNano())
	return nil
}

// readNchanPoll reads a long-poll answer of Nchan, appending its message
// to buf: msg is nil when the poll timed out without one (304 or 408).
// keep reports whether the connection can carry the next poll.
func readNchanPoll(resp *http.Response, buf []byte) (msg []byte, keep bool, err error) {
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified, http.StatusRequestTimeout:
		_, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, err == nil && !resp.Close, nil
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, false, fmt.Errorf("poll: %s: %s", resp.Status, clip(b))
	}
	if resp.Header.Get("Last-Modified") == "" || resp.Header.Get("Etag") == "" {
		return nil, false, fmt.Errorf("poll: answer without Last-Modified and Etag")
	}
	msg, err = readAll(io.LimitReader(resp.Body, pollMaxBody+1), buf)
	switch {
	case err != nil:
		return nil, false, fmt.Errorf("poll: read answer: %w", err)
	case len(msg) > pollMaxBody:
		return nil, false, fmt.Errorf("poll: answer longer than %d bytes", pollMaxBody)
	}
	return msg, !resp.Close, nil
}

// close closes the connection, if any.
func (p *nchanPoller) close() {
	if p.c != nil {
		p.c.close()
		p.c = nil
	}
}
