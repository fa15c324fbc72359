package transports_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

// idleConns is how many connections BenchmarkIdleHeap opens per kind.
const idleConns = 1000

// BenchmarkIdleHeap measures the heap that an idle subscriber holds, plain
// and compressed, per transport: it opens idleConns connections that each
// received a dashboard update (about 1 KiB, from history) and then sit
// idle, and reports the growth of the process's HeapInuse per connection
// (the test's clients hold the same for both kinds: a raw connection, or
// a gorilla client).
//
//	go test ./transports -run '^$' -bench IdleHeap -benchtime 3x
func BenchmarkIdleHeap(b *testing.B) {
	store := resume.NewMemory(resume.MemoryConfig{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg := transports.Config{MaxConnsPerIP: 4 * idleConns, ResumeRate: 1 << 20, SubscribeRate: 1 << 20}
	srv, err := transports.New(cfg, store, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	addr := ln.Addr().String()
	update := `{"ts":1765111111,` + strings.Repeat(`"widget_00":123.45,`, 52) + `"end":0}`
	before, err := store.Publish(context.Background(), "idle", "", []byte("first"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := store.Publish(context.Background(), "idle", "", []byte(update)); err != nil {
		b.Fatal(err)
	}
	since := before.String()
	kinds := []struct {
		name string
		open func() (io.Closer, error)
	}{
		{"sse/plain", func() (io.Closer, error) { return openIdleSSE(addr, since, false) }},
		{"sse/gzip", func() (io.Closer, error) { return openIdleSSE(addr, since, true) }},
		{"ws/plain", func() (io.Closer, error) { return openIdleWS(addr, since, false) }},
		{"ws/deflate", func() (io.Closer, error) { return openIdleWS(addr, since, true) }},
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			var grown int64
			for b.Loop() {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				conns := make([]io.Closer, 0, idleConns)
				for range idleConns {
					c, err := k.open()
					if err != nil {
						b.Fatal(err)
					}
					conns = append(conns, c)
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				grown += int64(m1.HeapInuse) - int64(m0.HeapInuse)
				for _, c := range conns {
					c.Close()
				}
				waitReleased(b, srv)
			}
			b.ReportMetric(float64(grown)/float64(b.N*idleConns), "heap-B/conn")
		})
	}
}

// waitReleased waits until srv has released every session of the
// connections closed before, so that the next measurement starts from a
// heap without them.
func waitReleased(b *testing.B, srv *transports.Server) {
	deadline := time.Now().Add(10 * time.Second)
	for srv.Hub().Sessions() > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("%d sessions left 10s after their connections closed", srv.Hub().Sessions())
		}
		time.Sleep(time.Millisecond) // polls the count; nothing to wait on
	}
}

// openIdleSSE opens an SSE stream from since on a raw connection and
// reads it up to the id-only event, which follows the history; it then
// holds the connection alone.
func openIdleSSE(addr, since string, compress bool) (io.Closer, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	q := "channel=idle&since=" + since
	if compress {
		q += "&compress=1"
	}
	fmt.Fprintf(conn, "GET /v1/subscribe?%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nAccept-Encoding: gzip\r\n\r\n", q, addr)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	var body io.Reader = br
	if resp.Header.Get("Content-Encoding") == "gzip" {
		if body, err = gzip.NewReader(br); err != nil {
			conn.Close()
			return nil, err
		}
	} else if compress {
		conn.Close()
		return nil, fmt.Errorf("not compressed: %v", resp.Header)
	}
	lines := bufio.NewReader(body)
	for events := 0; events < 2; {
		line, err := lines.ReadString('\n')
		if err != nil {
			conn.Close()
			return nil, err
		}
		if strings.HasPrefix(line, "id: ") {
			events++ // the update, then the id-only event
		}
	}
	return conn, nil
}

// openIdleWS subscribes from since over WebSocket and reads the update.
func openIdleWS(addr, since string, compress bool) (io.Closer, error) {
	q := "ws://" + addr + "/v1/subscribe?channel=idle&since=" + since
	if compress {
		q += "&compress=1"
	}
	conn, _, err := (&websocket.Dialer{EnableCompression: compress}).Dial(q, nil)
	if err != nil {
		return nil, err
	}
	for {
		_, m, err := conn.ReadMessage()
		if err != nil {
			conn.Close()
			return nil, err
		}
		if strings.Contains(string(m), `"data":"{`) {
			return conn, nil
		}
	}
}
