package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// maxAttackedRSS bounds the resident memory of an edge under every attack
// below, at its peak (VmHWM).
const maxAttackedRSS = 300 << 20

// attacked is an edge process under attack, with a well-behaved SSE
// subscriber of channel "calm" that must keep receiving throughout.
type attacked struct {
	name  string
	base  string // http://127.0.0.1:PORT
	host  string // 127.0.0.1:PORT
	proc  *os.Process
	auth  string      // the Authorization header of well-behaved publishes
	calm  chan string // data lines of the calm subscriber
	count int         // well-behaved publishes so far
}

// attackEdge starts an edge process with args and subscribes to "calm".
func attackEdge(t *testing.T, bin, name, auth string, args ...string) *attacked {
	t.Helper()
	base, _, proc := startProcess(t, bin, args...)
	a := &attacked{name: name, base: base, host: strings.TrimPrefix(base, "http://"), proc: proc, auth: auth, calm: make(chan string, 64)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/subscribe?channel=calm", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: calm subscriber: %v %v", name, resp, err)
	}
	go func() {
		defer resp.Body.Close()
		lines := bufio.NewScanner(resp.Body)
		for lines.Scan() {
			if data, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
				a.calm <- data
			}
		}
		close(a.calm)
	}()
	return a
}

// publish publishes data to channel as a well-behaved backend.
func (a *attacked) publish(t *testing.T, channel, data string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.base+"/v1/publish?channel="+channel, strings.NewReader(data))
	if a.auth != "" {
		req.Header.Set("Authorization", a.auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: publish: %v", a.name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: publish: status %d", a.name, resp.StatusCode)
	}
}

// stillServes publishes to "calm" and requires the subscriber to get it,
// with nothing before it: the edge still delivers, and nothing an attacker
// sent reached the channel.
func (a *attacked) stillServes(t *testing.T) {
	t.Helper()
	a.count++
	want := fmt.Sprintf("calm-%d", a.count)
	a.publish(t, "calm", want)
	var foreign []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got, ok := <-a.calm:
			if !ok {
				t.Fatalf("%s: the calm subscriber's stream ended", a.name)
			}
			if got != want {
				foreign = append(foreign, got)
				continue
			}
			if len(foreign) > 0 {
				t.Fatalf("%s: the calm subscriber got %q before %q", a.name, foreign, want)
			}
			return
		case <-timeout:
			t.Fatalf("%s: the calm subscriber did not get %q within 10s", a.name, want)
		}
	}
}

// memory returns a field of /proc/PID/status in bytes (VmRSS, VmHWM).
func (a *attacked) memory(t *testing.T, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.proc.Pid))
	if err != nil {
		t.Skipf("no /proc to read the edge's memory from: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kib << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, a.proc.Pid)
	return 0
}

// TestHostileProcess attacks real edge processes the way an outsider
// would, one class of attack per subtest. Each attack must be refused
// with the JSON error (or the WebSocket close code) the contract names,
// a well-behaved subscriber on the same edge keeps receiving, and the
// edge's resident memory stays under maxAttackedRSS at its peak. The
// attacks are scaled to prove that bound: each would cross it on an edge
// without the limit it tests.
func TestHostileProcess(t *testing.T) {
	bin := buildEdge(t)
	open := attackEdge(t, bin, "open", "", "--body-timeout", "2s")
	big := attackEdge(t, bin, "big", "", "--max-payload", strconv.Itoa(16<<20), "--body-timeout", "2s")
	keyed := attackEdge(t, bin, "keyed", "Bearer k3y", "--publish-key", "k3y",
		"--jwt-secret", "an-hmac-secret-of-at-least-32-bytes", "--anonymous", "calm")
	attacks := []struct {
		name   string
		target *attacked
		attack func(t *testing.T, a *attacked)
	}{
		{"decompression bomb", open, attackDecompression},
		{"oversized frame", open, attackOversizedFrame},
		{"deep JSON", open, attackDeepJSON},
		{"header flood", open, attackHeaderFlood},
		{"slowloris", open, attackSlowloris},
		{"cross-site publish", open, attackCrossSite},
		{"DNS rebinding Host", open, attackRebinding},
		{"cursor abuse", open, attackCursors},
		{"slow body", big, attackSlowBody},
		{"credential placement", keyed, attackCredentials},
		{"history without a token", keyed, attackHistory},
	}
	for _, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			at.target.stillServes(t)
			at.attack(t, at.target)
			at.target.stillServes(t)
		})
	}
	for _, a := range []*attacked{open, big, keyed} {
		peak := a.memory(t, "VmHWM")
		t.Logf("%s edge: peak RSS %d MiB, now %d MiB", a.name, peak>>20, a.memory(t, "VmRSS")>>20)
		if peak > maxAttackedRSS {
			t.Errorf("%s edge: peak RSS %d MiB, over the %d MiB bound", a.name, peak>>20, maxAttackedRSS>>20)
		}
	}
}

// jsonError checks that resp is the edge's JSON error with status and,
// when code is not empty, that code.
func jsonError(t *testing.T, what string, resp *http.Response, status int, code string) {
	t.Helper()
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if resp.StatusCode != status || json.Unmarshal(body, &e) != nil || e.Error.Code == "" || (code != "" && e.Error.Code != code) {
		t.Fatalf("%s: %d %q, want %d with the JSON error %q", what, resp.StatusCode, body, status, code)
	}
}

// rawRequest sends head (and body) on a new connection and reads the
// response.
func rawRequest(t *testing.T, a *attacked, head string, body []byte) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", a.host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write(append([]byte(head), body...)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response to %.60q: %v", head, err)
	}
	return resp
}

// wsHandshake opens a WebSocket on a raw connection, offering
// permessage-deflate and asking for it (compress=1), and reports whether
// the edge accepted it.
func wsHandshake(t *testing.T, a *attacked) (net.Conn, *bufio.Reader, bool) {
	t.Helper()
	c, err := net.Dial("tcp", a.host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "GET /v1/subscribe?compress=1 HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"+
		"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n\r\n", a.host)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return c, br, strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
}

// clientFrame encodes one final masked client frame (a zero mask key, so
// the payload goes as it is).
func clientFrame(first byte, payload []byte) []byte {
	b := []byte{first, 0x80 | 127}
	b = binary.BigEndian.AppendUint64(b, uint64(len(payload)))
	b = append(b, 0, 0, 0, 0)
	return append(b, payload...)
}

// closeCode reads server frames until a close frame and returns its code.
func closeCode(t *testing.T, br *bufio.Reader) int {
	t.Helper()
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			io.ReadFull(br, l[:])
			n = uint64(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			io.ReadFull(br, l[:])
			n = binary.BigEndian.Uint64(l[:])
		}
		payload := make([]byte, min(n, 1<<20))
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatalf("frame: %v", err)
		}
		if h[0]&0x0f == websocket.CloseMessage {
			if len(payload) < 2 {
				return websocket.CloseNoStatusReceived
			}
			return int(binary.BigEndian.Uint16(payload))
		}
	}
}

var bomb = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 64 {
		w.Write(zeros)
	}
	w.Flush()
	return bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
})

// Eight frames of ~64 KiB that inflate to 64 MiB each: the edge must stop
// inflating at its read limit and close with 1009 (or, when it does not
// offer compression, refuse the compressed frame as a protocol error).
func attackDecompression(t *testing.T, a *attacked) {
	type bombed struct {
		br      *bufio.Reader
		deflate bool
	}
	var conns []bombed
	for range 8 {
		c, br, deflate := wsHandshake(t, a)
		if _, err := c.Write(clientFrame(0x80|0x40|websocket.TextMessage, bomb())); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, bombed{br, deflate})
	}
	for i, c := range conns {
		want := websocket.CloseMessageTooBig
		if !c.deflate {
			want = websocket.CloseProtocolError
		}
		if code := closeCode(t, c.br); code != want {
			t.Errorf("bomb %d: close code %d, want %d", i, code, want)
		}
	}
}

// A plain frame over the read limit is refused with 1009.
func attackOversizedFrame(t *testing.T, a *attacked) {
	c, br, _ := wsHandshake(t, a)
	c.Write(clientFrame(0x80|websocket.TextMessage, bytes.Repeat([]byte("x"), 4<<20)))
	if code := closeCode(t, br); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want %d", code, websocket.CloseMessageTooBig)
	}
}

// A deeply nested operation is answered with an error frame, and the
// connection stays usable.
func attackDeepJSON(t *testing.T, a *attacked) {
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+a.host+"/v1/subscribe", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	deep := `{"op":"subscribe","ref":1,"channel":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}`
	for _, op := range []string{deep[:min(len(deep), 120_000)], `{"op":"ping","ref":2}`} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(op)); err != nil {
			t.Fatal(err)
		}
	}
	var types []string
	for len(types) < 2 {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %v: %v", types, err)
		}
		var f struct{ Type string }
		if json.Unmarshal(b, &f) != nil {
			t.Fatalf("frame %.200q is not JSON", b)
		}
		types = append(types, f.Type)
	}
	if types[0] != "error" || types[1] != "pong" {
		t.Fatalf("frames %v, want an error then the pong", types)
	}
}

// A header block over 16 KiB, in one header or many, gets 431 as JSON.
func attackHeaderFlood(t *testing.T, a *attacked) {
	for name, headers := range map[string]string{
		"one long header": "X-Flood: " + strings.Repeat("a", 32<<10) + "\r\n",
		"many headers":    strings.Repeat("X-Flood: "+strings.Repeat("a", 100)+"\r\n", 400),
	} {
		resp := rawRequest(t, a, "GET /healthz HTTP/1.1\r\nHost: "+a.host+"\r\n"+headers+"\r\n", nil)
		jsonError(t, name, resp, http.StatusRequestHeaderFieldsTooLarge, "")
	}
}

// Connections that trickle their request head are cut by the header
// timeout; the edge serves others meanwhile.
func attackSlowloris(t *testing.T, a *attacked) {
	const conns = 100
	closed := make(chan time.Duration, conns)
	start := time.Now()
	for range conns {
		c, err := net.Dial("tcp", a.host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET /v1/subscribe?channel=calm HTTP/1.1\r\nHost: %s\r\n", a.host)
		go func() {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			go func() {
				// The attacker's pace: a byte a second, until the edge cuts
				// the connection or 30 s pass.
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for range 30 {
					if _, err := c.Write([]byte("X")); err != nil {
						return
					}
					<-tick.C
				}
			}()
			io.Copy(io.Discard, c)
			closed <- time.Since(start)
		}()
	}
	a.stillServes(t)
	var last time.Duration
	for range conns {
		d := <-closed
		last = max(last, d)
	}
	if last > 20*time.Second {
		t.Fatalf("the last slow connection was cut after %v", last)
	}
	t.Logf("%d slow connections cut within %v", conns, last.Round(time.Millisecond))
}

// A page on another site cannot publish through a visitor's browser:
// cross-origin publishes are refused, whatever their content type.
func attackCrossSite(t *testing.T, a *attacked) {
	cases := []struct {
		name        string
		contentType string
		header      http.Header
	}{
		{"text/plain from another origin", "text/plain", http.Header{"Origin": {"http://evil.example"}}},
		{"form from another origin", "application/x-www-form-urlencoded", http.Header{"Origin": {"http://evil.example"}}},
		{"null origin", "text/plain", http.Header{"Origin": {"null"}}},
		{"cross-site fetch metadata", "text/plain", http.Header{"Sec-Fetch-Site": {"cross-site"}}},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodPost, a.base+"/v1/publish?channel=calm", strings.NewReader("xsite"))
		req.Header = c.header.Clone()
		req.Header.Set("Content-Type", c.contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		jsonError(t, c.name, resp, http.StatusForbidden, "forbidden")
	}
}

// A DNS-rebinding page reaches the edge on loopback under a foreign Host:
// it may not publish anonymously, over HTTP or a WebSocket.
func attackRebinding(t *testing.T, a *attacked) {
	req, _ := http.NewRequest(http.MethodPost, a.base+"/v1/publish?channel=calm", strings.NewReader("rebound"))
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	jsonError(t, "HTTP publish", resp, http.StatusForbidden, "forbidden")

	d := websocket.Dialer{NetDial: func(string, string) (net.Conn, error) { return net.Dial("tcp", a.host) }}
	ws, _, err := d.Dial("ws://evil.example/v1/subscribe", http.Header{"Origin": {"http://evil.example"}})
	if err != nil {
		return // refusing the upgrade is a refusal too
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"publish","channel":"calm","data":"rebound","ref":1}`))
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Type  string
		Error struct{ Code string }
	}
	if json.Unmarshal(b, &f) != nil || f.Type != "error" || f.Error.Code != "forbidden" {
		t.Fatalf("WebSocket publish under a foreign Host: %s, want a forbidden error frame", b)
	}
}

// Malformed cursors are 400 bad_cursor; a cursor ahead of the channel gets
// the gap and then the next message.
func attackCursors(t *testing.T, a *attacked) {
	for _, since := range []string{"garbage", "-1-1", "18446744073709551616-0", strings.Repeat("9", 10_000), "1-2-3", "0-0,junk"} {
		resp, err := http.Get(a.base + "/v1/subscribe?channel=cur&timeout=1&since=" + url.QueryEscape(since))
		if err != nil {
			t.Fatal(err)
		}
		jsonError(t, fmt.Sprintf("since=%.20q", since), resp, http.StatusBadRequest, "bad_cursor")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/v1/subscribe?channel=ahead", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", "9999999999999-0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a.publish(t, "ahead", "after the gap")
	lines := bufio.NewScanner(resp.Body)
	var seen []string
	for lines.Scan() && !strings.HasPrefix(lines.Text(), "data: after") {
		seen = append(seen, lines.Text())
	}
	if !strings.Contains(strings.Join(seen, "\n"), "event: gap") || lines.Err() != nil {
		t.Fatalf("a cursor ahead of the channel: %q then %v; want the gap, then the message", seen, lines.Err())
	}
}

// Bodies that announce 16 MiB and stall after a few bytes are cut with 408
// after --body-timeout, without the edge holding 16 MiB for each.
func attackSlowBody(t *testing.T, a *attacked) {
	const conns = 60
	errs := make(chan error, conns)
	for range conns {
		c, err := net.Dial("tcp", a.host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST /v1/publish?channel=slow HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n0123456789", a.host, 16<<20)
		go func() {
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil && resp.StatusCode != http.StatusRequestTimeout {
				err = fmt.Errorf("status %d, want 408", resp.StatusCode)
			}
			if err == nil && resp.Header.Get("Content-Type") != "application/json" {
				err = fmt.Errorf("Content-Type %q, want JSON", resp.Header.Get("Content-Type"))
			}
			errs <- err
		}()
	}
	a.stillServes(t)
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A publish key counts only in the Authorization header: not in a cookie,
// not in access_token=, not behind a Basic header.
func attackCredentials(t *testing.T, a *attacked) {
	cases := []struct {
		name   string
		query  string
		header http.Header
		status int
	}{
		{"key in a cookie", "", http.Header{"Cookie": {"edge_token=k3y"}}, http.StatusUnauthorized},
		{"key in a cookie behind Basic", "", http.Header{"Cookie": {"edge_token=k3y"}, "Authorization": {"Basic eDp5"}}, http.StatusUnauthorized},
		{"key in access_token=", "&access_token=k3y", nil, http.StatusUnauthorized},
		{"wrong key", "", http.Header{"Authorization": {"Bearer nope"}}, http.StatusUnauthorized},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodPost, a.base+"/v1/publish?channel=calm"+c.query, strings.NewReader("stolen"))
		req.Header = c.header.Clone()
		if req.Header == nil {
			req.Header = http.Header{}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		jsonError(t, c.name, resp, c.status, "unauthorized")
	}
}

// History applies the subscribe rules: no token, no private history.
func attackHistory(t *testing.T, a *attacked) {
	a.publish(t, "private", "secret payload")
	resp, err := http.Get(a.base + "/v1/history?channel=private")
	if err != nil {
		t.Fatal(err)
	}
	jsonError(t, "history without a token", resp, http.StatusUnauthorized, "unauthorized")
}
