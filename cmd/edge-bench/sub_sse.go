package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runSSE subscribes over Server-Sent Events with a small hand-written
// client (one goroutine, one connection): ready on the first id: line (the
// edge writes its id-only event once the subscriber has joined), then every
// data: line counts as one message.
func (s *subscriber) runSSE(ctx context.Context, ready func()) error {
	hostport := s.env.base.Host
	conn, err := s.env.dialers[s.id%len(s.env.dialers)].DialContext(ctx, "tcp", hostport)
	if err != nil {
		return fmt.Errorf("sse: %w", err)
	}
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })()

	conn.SetDeadline(time.Now().Add(connectTimeout))
	u := s.env.subscribeURL("http", channelName(s.channel))
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("sse: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", "edge-bench")
	if err := req.Write(conn); err != nil {
		return fmt.Errorf("sse: send request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4096), req)
	if err != nil {
		return fmt.Errorf("sse: read response: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("sse: %s: %s", resp.Status, clip(body))
	}
	r := bufio.NewReaderSize(resp.Body, 4096)
	var long []byte // a line longer than r's buffer
	event := ""
	isReady := false
	for {
		var line []byte
		line, long, err = readLine(r, long)
		if err != nil {
			return fmt.Errorf("sse: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "":
			if len(line) == 0 {
				event = "" // end of an event; a comment line otherwise
			}
		case "event":
			event = string(value)
		case "id":
			if !isReady {
				isReady = true
				conn.SetDeadline(time.Time{})
				ready()
			}
		case "data":
			if event == "disconnect" {
				return fmt.Errorf("sse: edge disconnected: %s", clip(value))
			}
			s.receive(value, time.Now().UnixNano())
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
