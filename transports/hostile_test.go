package transports_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeworks/edge/transports"
)

// dialFrom dials addr from a loopback source address, so that tests can
// play several clients (the edge's limits count per address).
func dialFrom(source, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 10 * time.Second}
	return d.Dial("tcp", addr)
}

// clientFrom is an HTTP client whose connections come from source.
func clientFrom(source string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 30 * time.Second}
}

// One edge under a mix of attacks from 127.0.0.1 — malformed HTTP,
// oversized headers, 2000 half-open connections, malformed
// WebSocket frames, a request flood — while a well-behaved subscriber on
// 127.0.0.2 receives every message a publisher on 127.0.0.3 sends. The
// edge's memory stays bounded and it serves normally afterwards.
func TestHostileInputs(t *testing.T) {
	if testing.Short() {
		t.Skip("the hostile-input test opens thousands of connections")
	}
	e := startEdge(t, transports.Config{MaxConnsPerIP: 2500})
	addr := strings.TrimPrefix(e.base, "http://")
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	good := clientFrom("127.0.0.2")
	req, _ := http.NewRequest(http.MethodGet, e.url("/v1/subscribe", "channel", "steady"), nil)
	req.Header.Set("Accept", "text/event-stream")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := good.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	received := make(chan string, 1000)
	go func() {
		defer close(received)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				received <- data
			}
		}
	}()

	var attacks sync.WaitGroup
	stop := make(chan struct{})
	rounds := map[string]*atomic.Int64{}
	attack := func(name string, f func()) {
		n := new(atomic.Int64)
		rounds[name] = n
		attacks.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					f()
					n.Add(1)
				}
			}
		})
	}
	// attacked reports whether every attack ran at least min rounds.
	attacked := func(min int64) bool {
		for _, n := range rounds {
			if n.Load() < min {
				return false
			}
		}
		return true
	}
	// raw runs one attack connection from 127.0.0.1.
	raw := func(f func(net.Conn)) func() {
		return func() {
			c, err := dialFrom("127.0.0.1", addr)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(500 * time.Millisecond)) // an answer or a close comes well before; keep-alive would wait
			f(c)
		}
	}
	var halfOpen []net.Conn
	for range 2000 { // slow loris: a request line and a header, then nothing
		c, err := dialFrom("127.0.0.1", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /v1/subscribe?channel=x HTTP/1.1\r\nHost: edge\r\n")
		halfOpen = append(halfOpen, c)
	}
	malformed := []string{
		"\x00\xff\xfe GARBAGE\r\n\r\n",
		"GET / HTTP/9.9\r\nHost: edge\r\n\r\n",
		"POST /v1/publish?channel=x HTTP/1.1\r\nHost: edge\r\nContent-Length: -5\r\n\r\n",
		"POST /v1/publish?channel=x HTTP/1.1\r\nHost: edge\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot hex\r\n\r\n",
		"GET /v1/subscribe?channel=%zz HTTP/1.1\r\nHost: edge\r\n\r\n",
		"GET /v1/subscribe HTTP/1.1\r\nHost: edge\r\nBad Header Without Colon\r\n\r\n",
	}
	var next int
	attack("malformed HTTP", raw(func(c net.Conn) {
		next++
		io.WriteString(c, malformed[next%len(malformed)])
		io.Copy(io.Discard, c)
	}))
	attack("oversized header", raw(func(c net.Conn) {
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: edge\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 64<<10))
		io.Copy(io.Discard, c)
	}))
	attack("malformed WebSocket frames", raw(func(c net.Conn) {
		fmt.Fprintf(c, "GET /v1/subscribe HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
		br := bufio.NewReader(c)
		if line, _ := br.ReadString('\n'); !strings.Contains(line, "101") {
			return
		}
		for _, frame := range [][]byte{
			{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},                                    // unmasked text
			{0x83, 0x80, 1, 2, 3, 4},                                                 // reserved opcode
			{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}, // 2^63 bytes claimed
			{0x09 | 0x00, 0x80 | 126, 0, 200, 1, 2, 3, 4},                            // fragmented control frame over 125 bytes
			{0x81, 0x84, 0, 0, 0, 0, 0xff, 0xfe, 0xfd, 0xfc},                         // invalid UTF-8 text
		} {
			c.Write(frame)
		}
		io.Copy(io.Discard, br)
	}))
	flood := clientFrom("127.0.0.1")
	attack("request flood", func() {
		for _, u := range []string{e.url("/v1/subscribe", "channel", "f", "timeout", "0"), e.url("/v1/history", "channel", "f"), e.url("/nope")} {
			if r, err := flood.Get(u); err == nil {
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
		}
	})

	publisher := clientFrom("127.0.0.3")
	deadline := time.Now().Add(time.Minute)
	delivered := 0
	for i := 0; i < 200 || !attacked(10); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("the attacks did not get 10 rounds each in a minute: %v", rounds)
		}
		data := fmt.Sprintf("steady-%d", i)
		r, err := publisher.Post(e.url("/v1/publish", "channel", "steady"), "text/plain", strings.NewReader(data))
		if err != nil {
			t.Fatalf("publish %d under attack: %v", i, err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode != 200 {
			t.Fatalf("publish %d under attack: %d", i, r.StatusCode)
		}
		select {
		case got, ok := <-received:
			if !ok || got != data {
				t.Fatalf("message %d: got %q (stream open %v), want %q", i, got, ok, data)
			}
			delivered++
		case <-time.After(30 * time.Second):
			t.Fatalf("the subscriber did not get message %d under attack", i)
		}
	}
	close(stop)
	attacks.Wait()

	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	for _, c := range halfOpen {
		c.Close()
	}
	if grown := int64(during.HeapInuse) - int64(before.HeapInuse); grown > 256<<20 {
		t.Errorf("heap grew by %d MiB under attack", grown>>20)
	}
	t.Logf("heap in use: %d MiB before, %d MiB under attack (with the test's own clients); %d messages delivered", before.HeapInuse>>20, during.HeapInuse>>20, delivered)
	for name, n := range rounds {
		t.Logf("%s: %d rounds", name, n.Load())
	}

	r, err := clientFrom("127.0.0.1").Get(e.url("/healthz"))
	if err != nil {
		t.Fatalf("after the attack: %v", err)
	}
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Fatalf("after the attack: %d", r.StatusCode)
	}
}
