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
	"time"
)

// connectSSE subscribes over Server-Sent Events with a small hand-written
// client (one connection, small buffers): ready on the first id: line (the
// edge writes its id-only event once the subscriber has joined), then every
// data: line counts as one message. Nchan's subscribers are ready on its
// ": hi" comment (see sub_nchan.go). With a cursor (--reconnect) it sends
// it as Last-Event-ID, as EventSource does.
func (s *subscriber) connectSSE(ctx context.Context) (receive func() error, err error) {
	conn, err := s.env.dialers[s.id%len(s.env.dialers)].DialContext(ctx, "tcp", s.host())
	if err != nil {
		return nil, fmt.Errorf("sse: %w", err)
	}
	conn = s.meter.wrap(conn)
	closeConn := closeOnDone(ctx, conn)
	sse := &sseReader{s: s, nchan: s.env.target == targetNchan}
	if err := sse.open(conn); err != nil {
		closeConn()
		return nil, err
	}
	return func() error {
		defer closeConn()
		return sse.read()
	}, nil
}

// sseReader reads the event stream of one SSE subscriber.
type sseReader struct {
	s     *subscriber
	r     *bufio.Reader
	long  []byte // a line longer than r's buffer
	event string // the event: field of the event being read
	id    []byte // the id: field of the event being read (--delta)
	retry []byte // the last retry: field, milliseconds
	nchan bool   // Nchan's stream: ready on its ": hi" comment
}

// open sends the request on conn, reads the answer's header and reads
// events until the subscriber is ready (see next).
func (e *sseReader) open(conn net.Conn) error {
	conn.SetDeadline(time.Now().Add(connectTimeout))
	path := "/v1/subscribe?channel=" + channelName(e.s.channel) + e.s.env.query
	if e.nchan {
		path = nchanSubscribePath(channelName(e.s.channel))
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + e.s.host() +
		"\r\nAccept: text/event-stream\r\nUser-Agent: edge-bench\r\n"
	if e.s.env.compress {
		req += "Accept-Encoding: gzip\r\n"
	}
	if len(e.s.cursor) > 0 {
		req += "Last-Event-ID: " + string(e.s.cursor) + "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return fmt.Errorf("sse: send request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4096), nil)
	if err != nil {
		return fmt.Errorf("sse: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e.s.refusedBy(resp.StatusCode, resp.Header)
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("sse: %s: %s", resp.Status, clip(body))
	}
	var body io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		// The edge flushes the gzip stream after each event, so the
		// reader has each event as soon as its bytes arrive.
		if body, err = gzip.NewReader(resp.Body); err != nil {
			return fmt.Errorf("sse: read gzip stream: %w", err)
		}
	}
	e.r = bufio.NewReaderSize(body, 4096)
	if err := e.next(true); err != nil {
		return err
	}
	conn.SetDeadline(time.Time{})
	return nil
}

// read reads events until the stream ends.
func (e *sseReader) read() error { return e.next(false) }

// next reads lines until the stream ends or, with untilReady, up to the
// first id: line (Nchan: the first comment line); every data: line counts
// as one message.
func (e *sseReader) next(untilReady bool) error {
	for {
		var line []byte
		var err error
		line, e.long, err = readLine(e.r, e.long)
		if err != nil {
			return fmt.Errorf("sse: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "":
			if len(line) == 0 {
				e.event, e.id = "", e.id[:0] // end of an event; a comment line otherwise
			} else if untilReady && e.nchan && bytes.Equal(line, nchanHi) {
				return nil
			}
		case "event":
			e.event = string(value)
		case "id":
			e.s.keepCursor(value)
			if e.s.env.delta {
				e.id = append(e.id[:0], value...)
			}
			if untilReady && !e.nchan {
				return nil
			}
		case "retry":
			e.retry = append(e.retry[:0], value...)
		case "data":
			switch e.event {
			case "disconnect":
				e.s.advise(e.retry)
				return fmt.Errorf("sse: edge disconnected: %s", clip(value))
			case "gap":
				e.s.gaps++
				continue
			}
			if e.s.env.delta {
				e.s.receiveID(e.id, value, e.event == "delta" || bytes.Contains(value, deltaField), time.Now().UnixNano())
				continue
			}
			e.s.receive(value, time.Now().UnixNano())
		}
	}
}

// readLine reads one line of r, using long for lines longer than r's
// buffer; the line is valid until the next call.
func readLine(r *bufio.Reader, long []byte) (line, longOut []byte, err error) {
	line, err = r.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, long, err
	}
	long = append(long[:0], line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		if len(long) > maxSize+4096 {
			return nil, long, fmt.Errorf("line longer than %d bytes", maxSize+4096)
		}
		line, err = r.ReadSlice('\n')
		long = append(long, line...)
	}
	if cap(long) > maxKeptBuffer {
		return long, nil, err
	}
	return long, long, err
}
