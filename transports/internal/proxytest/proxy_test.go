package proxytest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wait bounds how long a test waits for something that must happen.
const wait = 10 * time.Second

// upstream is a real HTTP server behind the proxy under test, serving
// /text (a plain answer), /stream (one SSE event, then held open) and /ws
// (a WebSocket echo).
type upstream struct {
	url     string
	wrote   chan struct{} // /stream flushed its first event
	release chan struct{} // closed by a test: /stream sends a second event and ends
	left    chan struct{} // /stream's request ended before release
	wsEnded chan struct{} // an echo connection ended
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{
		wrote:   make(chan struct{}, 1),
		release: make(chan struct{}),
		left:    make(chan struct{}, 1),
		wsEnded: make(chan struct{}, 8),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/text", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello")
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		http.NewResponseController(w).Flush()
		signal(u.wrote)
		select {
		case <-u.release:
			io.WriteString(w, "data: 2\n\n")
		case <-r.Context().Done():
			signal(u.left)
		}
	})
	var upgrader websocket.Upgrader
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer signal(u.wsEnded)
		defer c.Close()
		for {
			typ, b, err := c.ReadMessage()
			if err != nil || c.WriteMessage(typ, b) != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

// signal sends on ch without blocking; ch's buffer holds what tests await.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatalf("no %s within %v", what, wait)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func wsURL(p *Proxy) string { return "ws" + strings.TrimPrefix(p.URL(), "http") + "/ws" }

// echo sends msg over c and checks that it comes back.
func echo(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	if _, b, err := c.ReadMessage(); err != nil || string(b) != msg {
		t.Fatalf("echo = %q, %v; want %q", b, err, msg)
	}
}

var modes = []Mode{Pass, RefuseUpgrades, HangUpgrades, Buffer, CutIdle}

func TestForwardsAndServesHandled(t *testing.T) {
	for _, m := range modes {
		t.Run(m.String(), func(t *testing.T) {
			p := Start(t, startUpstream(t).url, m)
			if code, body := get(t, p.URL()+"/text"); code != 200 || body != "hello" {
				t.Errorf("GET /text = %d %q, want 200 \"hello\"", code, body)
			}
			p.Handle("/page", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "from the proxy")
			}))
			if code, body := get(t, p.URL()+"/page"); code != 200 || body != "from the proxy" {
				t.Errorf("GET /page = %d %q, want 200 \"from the proxy\"", code, body)
			}
			p.Handle("/page", nil)
			if code, _ := get(t, p.URL()+"/page"); code != http.StatusNotFound {
				t.Errorf("GET /page after Handle(nil) = %d, want upstream's 404", code)
			}
		})
	}
}

func TestPassStreams(t *testing.T) {
	u := startUpstream(t)
	p := Start(t, u.url, Pass)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+"/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// /stream holds its response until release or its request's end, so
	// these bytes came through while the upstream handler was running.
	first := make([]byte, len("data: 1\n\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "data: 1\n\n" {
		t.Fatalf("first bytes = %q, %v", first, err)
	}
	cancel()
	await(t, u.left, "cancelled upstream request after the client left")
}

func TestBufferHoldsResponseUntilUpstreamEnds(t *testing.T) {
	u := startUpstream(t)
	p := Start(t, u.url, Buffer)
	type reply struct {
		resp *http.Response
		err  error
	}
	replied := make(chan reply, 1)
	go func() {
		resp, err := http.Get(p.URL() + "/stream")
		replied <- reply{resp, err}
	}()
	await(t, u.wrote, "first event from upstream")
	// A streaming proxy delivers the flushed event at once; Buffer must
	// not, however long we look. The grace period bounds only how hard
	// we look: a correct proxy passes whatever it is.
	const grace = 200 * time.Millisecond
	select {
	case r := <-replied:
		t.Fatalf("response arrived while upstream was still sending (err %v)", r.err)
	case <-time.After(grace):
	}
	close(u.release)
	var r reply
	select {
	case r = <-replied:
	case <-time.After(wait):
		t.Fatalf("no response within %v of upstream ending it", wait)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.resp.Body.Close()
	b, err := io.ReadAll(r.resp.Body)
	const want = "data: 1\n\ndata: 2\n\n"
	if err != nil || string(b) != want {
		t.Fatalf("body = %q, %v; want %q", b, err, want)
	}
	if r.resp.ContentLength != int64(len(want)) {
		t.Errorf("Content-Length = %d, want %d", r.resp.ContentLength, len(want))
	}
}

func TestBufferCancelsUpstreamWhenClientLeaves(t *testing.T) {
	u := startUpstream(t)
	p := Start(t, u.url, Buffer)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+"/stream", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Error("Buffer answered a response upstream had not ended")
		}
	}()
	await(t, u.wrote, "first event from upstream")
	cancel()
	await(t, u.left, "cancelled upstream request after the client left")
	<-done
}

func TestWebSocketHandshake(t *testing.T) {
	tests := []struct {
		mode   Mode
		status int // the handshake's answer; 0 for none at all
	}{
		{Pass, http.StatusSwitchingProtocols},
		{RefuseUpgrades, http.StatusForbidden},
		{HangUpgrades, 0},
		{Buffer, http.StatusBadRequest}, // upstream saw a plain GET
	}
	for _, tc := range tests {
		t.Run(tc.mode.String(), func(t *testing.T) {
			p := Start(t, startUpstream(t).url, tc.mode)
			d := websocket.Dialer{HandshakeTimeout: wait}
			if tc.status == 0 {
				d.HandshakeTimeout = 300 * time.Millisecond
			}
			c, resp, err := d.Dial(wsURL(p), nil)
			wantUpgrades := 0
			switch tc.status {
			case http.StatusSwitchingProtocols:
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer c.Close()
				echo(t, c, "hi")
				wantUpgrades = 1
			case 0:
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("dial: %v, want a timeout", err)
				}
			default:
				if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != tc.status {
					t.Fatalf("dial: %v, response %v; want status %d", err, resp, tc.status)
				}
				if ct := resp.Header.Get("Content-Type"); tc.mode == RefuseUpgrades && !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("refusal Content-Type = %q, want text/plain", ct)
				}
			}
			if got := p.Upgrades(); got != wantUpgrades {
				t.Errorf("Upgrades() = %d, want %d", got, wantUpgrades)
			}
			if code, body := get(t, p.URL()+"/text"); code != 200 || body != "hello" {
				t.Errorf("GET /text after the handshake = %d %q", code, body)
			}
		})
	}
}

func TestKillUpgraded(t *testing.T) {
	u := startUpstream(t)
	p := Start(t, u.url, Pass)
	c, _, err := websocket.DefaultDialer.Dial(wsURL(p), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echo(t, c, "before")
	if n := p.KillUpgraded(); n != 1 {
		t.Fatalf("KillUpgraded() = %d, want 1", n)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	if _, _, err := c.ReadMessage(); err == nil {
		t.Fatal("read after KillUpgraded succeeded")
	} else if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("read after KillUpgraded timed out: the client side stayed open")
	}
	await(t, u.wsEnded, "upstream side of the killed tunnel ending")
	if n := p.KillUpgraded(); n != 0 {
		t.Errorf("second KillUpgraded() = %d, want 0", n)
	}
	c2, _, err := websocket.DefaultDialer.Dial(wsURL(p), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	echo(t, c2, "after")
	if got := p.Upgrades(); got != 2 {
		t.Errorf("Upgrades() = %d, want 2", got)
	}
}

func TestStallUpgraded(t *testing.T) {
	u := startUpstream(t)
	p := Start(t, u.url, Pass)
	c, _, err := websocket.DefaultDialer.Dial(wsURL(p), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echo(t, c, "before")
	if n := p.StallUpgraded(); n != 1 {
		t.Fatalf("StallUpgraded() = %d, want 1", n)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("into the void")); err != nil {
		t.Fatalf("write to a stalled tunnel: %v, want it to go through as a dead path's would", err)
	}
	// Nothing comes back, and the connection stays open: the read can
	// only end by its deadline.
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, msg, err := c.ReadMessage(); err == nil {
		t.Fatalf("read %q through a stalled tunnel", msg)
	} else if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
		t.Fatalf("read through a stalled tunnel: %v, want a timeout", err)
	}
	if n := p.KillUpgraded(); n != 1 {
		t.Fatalf("KillUpgraded() after the stall = %d, want 1", n)
	}
	await(t, u.wsEnded, "upstream side of the stalled tunnel ending")
}

func TestSetModeAffectsNewRequestsOnly(t *testing.T) {
	p := Start(t, startUpstream(t).url, Pass)
	c, _, err := websocket.DefaultDialer.Dial(wsURL(p), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.SetMode(RefuseUpgrades)
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL(p), nil); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dial after SetMode(RefuseUpgrades): %v, %v; want 403", err, resp)
	}
	echo(t, c, "still tunnelled")
	p.SetMode(Pass)
	c2, _, err := websocket.DefaultDialer.Dial(wsURL(p), nil)
	if err != nil {
		t.Fatalf("dial after SetMode(Pass): %v", err)
	}
	c2.Close()
}

// TestCloseEndsHeldUpgrade closes a HangUpgrades proxy while it holds (or
// is about to hold) an upgrade request: the client's connection must end.
func TestCloseEndsHeldUpgrade(t *testing.T) {
	p := Start(t, startUpstream(t).url, HangUpgrades)
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	p.close()
	conn.SetReadDeadline(time.Now().Add(wait))
	n, err := conn.Read(make([]byte, 1))
	if ne, ok := errors.AsType[net.Error](err); n != 0 || err == nil || ok && ne.Timeout() {
		t.Fatalf("read after close = %d, %v; want the connection ended", n, err)
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(p.URL(), "http://")); err == nil {
		t.Error("proxy still accepts connections after close")
	}
}

// TestOddRequests sends requests a browser would not; each must get an
// answer, and none may reach anything but upstream.
func TestOddRequests(t *testing.T) {
	tests := []struct {
		name, raw string
		status    string // wanted status code
	}{
		{"absolute form goes upstream", "GET http://example.com/text HTTP/1.1\r\nHost: example.com\r\n\r\n", "200"},
		{"upstream refuses the upgrade", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, UPGRADE\r\nUpgrade: WebSocket\r\n\r\n", "400"},
		{"upgrade without Connection", "GET /text HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", "200"},
		{"upgrade with a body", "POST /text HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\nabc", "200"},
		{"other upgrade", "GET /text HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", "200"},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "404"},
	}
	p := Start(t, startUpstream(t).url, Pass)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL(), "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(wait))
			if _, err := io.WriteString(conn, tc.raw); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "HTTP/1.1 "+tc.status+" ") {
				t.Fatalf("status line %q, %v; want %s", line, err, tc.status)
			}
		})
	}
	if got := p.Upgrades(); got != 0 {
		t.Errorf("Upgrades() = %d, want 0: upstream accepted none", got)
	}
}

// CutIdle closes a tunnel idle for the period, keeps one with traffic
// more frequent than that, and cuts nothing in other modes.
func TestCutIdle(t *testing.T) {
	const period = 300 * time.Millisecond
	for _, tc := range []struct {
		name  string
		mode  Mode
		every time.Duration // an echo this often; 0 none
		cut   bool
	}{
		{"idle", CutIdle, 0, true},
		{"heartbeat", CutIdle, period / 3, false},
		{"idle in Pass", Pass, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := startUpstream(t)
			p := Start(t, u.url, tc.mode)
			p.CutIdleAfter(period)
			c, _, err := websocket.DefaultDialer.Dial(wsURL(p), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			echo(t, c, "first")
			// For 4 periods: an echo every tc.every (each fails if the
			// connection was cut), or one read that ends when it is cut.
			cut := false
			if tc.every > 0 {
				tick := time.NewTicker(tc.every)
				defer tick.Stop()
				for i := range int(4 * period / tc.every) {
					<-tick.C
					echo(t, c, fmt.Sprint("beat ", i))
				}
			} else {
				c.SetReadDeadline(time.Now().Add(4 * period))
				_, _, err := c.ReadMessage()
				ne, ok := errors.AsType[net.Error](err)
				cut = !ok || !ne.Timeout()
			}
			if cut != tc.cut || (p.Cuts() == 1) != tc.cut {
				t.Fatalf("cut %v (Cuts() = %d), want %v", cut, p.Cuts(), tc.cut)
			}
		})
	}
}
