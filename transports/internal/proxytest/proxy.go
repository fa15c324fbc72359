// Package proxytest runs HTTP reverse proxies for tests that put a hostile
// network between a browser and an edge: a proxy that passes everything,
// one that refuses WebSocket upgrades, one that swallows them, and one
// that buffers whole responses as some corporate proxies do, and one that
// cuts connections left idle, as NATs and load balancers do. Its
// WebSocket tunnels can be killed, or stalled into silently dead paths. A proxy
// listens on loopback only and forwards to one loopback upstream.
package proxytest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Mode says how a Proxy treats traffic.
type Mode int

const (
	// Pass forwards everything, WebSocket upgrades included, and flushes
	// streaming responses as they come.
	Pass Mode = iota
	// RefuseUpgrades answers every WebSocket upgrade request with 403 and
	// a short text/plain body, like a proxy that does not allow
	// WebSocket; everything else it forwards as Pass does.
	RefuseUpgrades
	// HangUpgrades accepts a WebSocket upgrade request and never answers
	// it: it holds the client's connection until the client goes away,
	// KillUpgraded is called or the proxy closes. Everything else it
	// forwards as Pass does.
	HangUpgrades
	// Buffer behaves like some corporate proxies: it strips the Upgrade
	// and Connection headers, so an upgrade request reaches upstream as a
	// plain GET, and it sends nothing of a response (status, headers,
	// body) until upstream has ended it. A streaming SSE response
	// therefore never arrives; completed ones (long-poll answers,
	// scripts) do.
	Buffer
	// CutIdle forwards everything as Pass does, but closes any client
	// connection (a held request, a WebSocket tunnel, a kept-alive
	// connection between requests) on which no byte has passed either way
	// for the idle period, DefaultIdleCut unless CutIdleAfter set another,
	// as NATs, mobile carriers and load balancers do. A heartbeat more
	// frequent than the period keeps a connection.
	CutIdle
)

// DefaultIdleCut is the idle period after which CutIdle closes a
// connection, unless CutIdleAfter set another.
const DefaultIdleCut = 2 * time.Second

// String returns the mode's name, as written in this package.
func (m Mode) String() string {
	switch m {
	case Pass:
		return "Pass"
	case RefuseUpgrades:
		return "RefuseUpgrades"
	case HangUpgrades:
		return "HangUpgrades"
	case Buffer:
		return "Buffer"
	case CutIdle:
		return "CutIdle"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

const (
	// maxBuffered bounds the body Buffer holds for one response; a
	// larger one is answered with 502.
	maxBuffered = 64 << 20
	// writeTimeout bounds writing an upgrade request to upstream.
	writeTimeout = 10 * time.Second
)

// Proxy is an HTTP reverse proxy on a loopback port in front of one
// upstream. Start makes one (the zero Proxy is not usable) and t.Cleanup
// closes it: its listener, every connection through it and every
// goroutine it started. Its methods are safe for concurrent use.
type Proxy struct {
	upstream  *url.URL
	addr      string // upstream host:port, dialled for WebSocket tunnels
	url       string
	srv       *http.Server
	transport *http.Transport
	pass      *httputil.ReverseProxy
	buffer    *httputil.ReverseProxy
	cancel    context.CancelFunc // ends every request's context
	served    chan struct{}      // closed when srv.Serve has returned
	closeOnce sync.Once
	mode      atomic.Int32
	upgrades  atomic.Int64
	idleCut   atomic.Int64 // CutIdle's period, in nanoseconds
	cuts      atomic.Int64

	// wg counts connections from StateNew until StateClosed or
	// StateHijacked, and handlers while they run. Each Add happens either
	// before Serve returns (StateNew) or while the count is above zero (a
	// handler runs on a counted connection), so close may Wait once Serve
	// has returned.
	wg sync.WaitGroup

	// mu guards handlers, tunnels and closed.
	mu       sync.Mutex
	handlers map[string]http.Handler
	tunnels  map[*tunnel]struct{}
	closed   bool // no new tunnels: close has ended them
}

// Start starts a proxy on 127.0.0.1:0 in front of upstream, an http://
// URL on a loopback address such as "http://127.0.0.1:1234", in mode m.
// t.Cleanup closes it.
func Start(t testing.TB, upstream string, m Mode) *Proxy {
	t.Helper()
	u, addr, err := parseUpstream(upstream)
	if err != nil {
		t.Fatal(err)
	}
	if m < Pass || m > CutIdle {
		t.Fatalf("proxytest: Start with unknown %v", m)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxytest: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	quiet := log.New(io.Discard, "", 0)
	p := &Proxy{
		upstream: u,
		addr:     addr,
		url:      "http://" + ln.Addr().String(),
		transport: &http.Transport{
			DialContext:         (&net.Dialer{}).DialContext,
			DisableCompression:  true, // pass bodies through as they are
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
		cancel:   cancel,
		served:   make(chan struct{}),
		handlers: make(map[string]http.Handler),
		tunnels:  make(map[*tunnel]struct{}),
	}
	p.mode.Store(int32(m))
	p.idleCut.Store(int64(DefaultIdleCut))
	p.pass = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      p.transport,
		FlushInterval:  -1,
		ModifyResponse: refuseSwitch,
		ErrorHandler:   proxyError,
		ErrorLog:       quiet,
	}
	p.buffer = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      p.transport,
		ModifyResponse: bufferBody,
		ErrorHandler:   proxyError,
		ErrorLog:       quiet,
	}
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serve),
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnState:         p.connState,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          quiet,
	}
	go func() {
		defer close(p.served)
		p.srv.Serve(&idleListener{Listener: ln, p: p})
	}()
	t.Cleanup(p.close)
	return p
}

// URL returns the proxy's base URL, "http://127.0.0.1:port".
func (p *Proxy) URL() string { return p.url }

// SetMode makes the proxy treat new requests as m says; connections
// already tunnelled or held stay as they are. It panics for a Mode not
// declared in this package.
func (p *Proxy) SetMode(m Mode) {
	if m < Pass || m > CutIdle {
		panic("proxytest: SetMode with unknown " + m.String())
	}
	p.mode.Store(int32(m))
}

// CutIdleAfter sets the idle period after which CutIdle closes a
// connection; it applies to connections from their next activity on. It
// panics for d <= 0.
func (p *Proxy) CutIdleAfter(d time.Duration) {
	if d <= 0 {
		panic("proxytest: CutIdleAfter with a period <= 0")
	}
	p.idleCut.Store(int64(d))
}

// Cuts reports how many connections CutIdle has closed so far.
func (p *Proxy) Cuts() int { return int(p.cuts.Load()) }

// KillUpgraded closes every WebSocket connection currently tunnelled
// through the proxy, both the client's and upstream's, and every upgrade
// request HangUpgrades holds. It returns how many it closed.
func (p *Proxy) KillUpgraded() int { return p.endTunnels(false) }

// StallUpgraded turns every WebSocket connection currently tunnelled
// through the proxy into a black hole, as a NAT that forgot the
// connection or a network switch would: both connections stay open, and
// whatever either side sends from then on is dropped, its close included.
// The client's connection ends only when the client closes it, or on
// KillUpgraded or close. It returns how many it stalled.
func (p *Proxy) StallUpgraded() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for tn := range p.tunnels {
		if tn.upstream != nil {
			tn.stalled.Store(true)
			n++
		}
	}
	return n
}

// Handle makes the proxy serve requests for path (the exact URL path)
// with h instead of forwarding them, in every mode; tests use it to serve
// a page from the proxy's origin. A later call for the same path replaces
// h; a nil h forwards path again.
func (p *Proxy) Handle(path string, h http.Handler) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h == nil {
		delete(p.handlers, path)
		return
	}
	p.handlers[path] = h
}

// Upgrades reports how many WebSocket upgrades the proxy has tunnelled so
// far: upgrade requests it forwarded in Pass mode that upstream answered
// with 101 Switching Protocols.
func (p *Proxy) Upgrades() int { return int(p.upgrades.Load()) }

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.wg.Add(1)
	defer p.wg.Done()
	p.mu.Lock()
	h := p.handlers[r.URL.Path]
	p.mu.Unlock()
	m := Mode(p.mode.Load())
	switch {
	case h != nil:
		h.ServeHTTP(w, r)
	case m == Buffer:
		p.buffer.ServeHTTP(w, r)
	case !isWebSocket(r):
		p.pass.ServeHTTP(w, r)
	case m == RefuseUpgrades:
		http.Error(w, "proxytest: WebSocket is not allowed through this proxy", http.StatusForbidden)
	case m == HangUpgrades:
		p.hang(w)
	default:
		p.tunnel(w, r)
	}
}

func (p *Proxy) connState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		p.wg.Add(1)
	case http.StateHijacked, http.StateClosed:
		p.wg.Done()
	}
}

// target points pr at upstream, keeping the request's path and query.
func (p *Proxy) target(pr *httputil.ProxyRequest) {
	pr.SetURL(p.upstream)
	pr.SetXForwarded()
}

// rewrite is target for requests the reverse proxies forward: only the
// tunnel speaks upgrades, so upstream sees a plain request.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	p.target(pr)
	pr.Out.Header.Del("Connection")
	pr.Out.Header.Del("Upgrade")
}

// tunnel forwards a WebSocket upgrade request to upstream, then copies
// bytes both ways until either side ends, KillUpgraded or close.
func (p *Proxy) tunnel(w http.ResponseWriter, r *http.Request) {
	pr := &httputil.ProxyRequest{In: r, Out: r.Clone(r.Context())}
	p.target(pr)
	var d net.Dialer
	up, err := d.DialContext(r.Context(), "tcp", p.addr)
	if err != nil {
		http.Error(w, "proxytest: dial upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	up.SetWriteDeadline(time.Now().Add(writeTimeout))
	err = pr.Out.Write(up)
	up.SetWriteDeadline(time.Time{})
	if err != nil {
		up.Close()
		http.Error(w, "proxytest: write upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		http.Error(w, "proxytest: hijack: "+err.Error(), http.StatusInternalServerError)
		return
	}
	tn := &tunnel{client: client, upstream: up}
	if !p.track(tn) {
		return
	}
	defer p.untrack(tn)

	done := make(chan struct{})
	go func() {
		defer close(done)
		defer tn.close()
		// The server's reader may already hold bytes the client sent.
		if n := brw.Reader.Buffered(); n > 0 {
			b, _ := brw.Reader.Peek(n)
			if _, err := up.Write(b); err != nil {
				return
			}
		}
		tn.forward(up, client)
	}()
	br := bufio.NewReader(up)
	if b, err := br.Peek(len("HTTP/1.1 101")); err == nil &&
		strings.HasPrefix(string(b), "HTTP/1.") && string(b[len("HTTP/1.1"):]) == " 101" {
		p.upgrades.Add(1)
	}
	tn.forward(client, br)
	if !tn.stalled.Load() { // a stalled client does not hear that upstream ended
		tn.close()
	}
	<-done
}

// forward copies src to dst until src ends or dst fails. Once tn is
// stalled it reads and drops everything, so a broken dst ends nothing.
func (tn *tunnel) forward(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !tn.stalled.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil && !tn.stalled.Load() {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hang takes over the client's connection, answers nothing and reads
// until the client goes away, KillUpgraded or close.
func (p *Proxy) hang(w http.ResponseWriter) {
	client, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "proxytest: hijack: "+err.Error(), http.StatusInternalServerError)
		return
	}
	tn := &tunnel{client: client}
	if !p.track(tn) {
		return
	}
	defer p.untrack(tn)
	io.Copy(io.Discard, client)
}

// tunnel is a hijacked upgrade: the client's connection, and upstream's
// unless HangUpgrades holds the client unanswered.
type tunnel struct {
	client, upstream net.Conn // upstream is nil for a held client
	stalled          atomic.Bool
	once             sync.Once
}

func (tn *tunnel) close() {
	tn.once.Do(func() {
		tn.client.Close()
		if tn.upstream != nil {
			tn.upstream.Close()
		}
	})
}

// track adds tn to the tunnels KillUpgraded and close end. It reports
// false, having closed tn, when the proxy is closing.
func (p *Proxy) track(tn *tunnel) bool {
	p.mu.Lock()
	closed := p.closed
	if !closed {
		p.tunnels[tn] = struct{}{}
	}
	p.mu.Unlock()
	if closed {
		tn.close()
	}
	return !closed
}

func (p *Proxy) untrack(tn *tunnel) {
	p.mu.Lock()
	delete(p.tunnels, tn)
	p.mu.Unlock()
	tn.close()
}

// endTunnels closes and forgets every tracked tunnel and returns how
// many; with closing set, track refuses new ones from then on.
func (p *Proxy) endTunnels(closing bool) int {
	p.mu.Lock()
	p.closed = p.closed || closing
	ended := make([]*tunnel, 0, len(p.tunnels))
	for tn := range p.tunnels {
		ended = append(ended, tn)
	}
	clear(p.tunnels)
	p.mu.Unlock()
	for _, tn := range ended {
		tn.close()
	}
	return len(ended)
}

// close ends every request's context, closes the listener, every
// connection and tunnel, and returns when every goroutine the proxy
// started has ended.
func (p *Proxy) close() {
	p.closeOnce.Do(func() {
		p.cancel()
		p.srv.Close()
		<-p.served
		p.endTunnels(true)
		p.wg.Wait()
		p.transport.CloseIdleConnections()
	})
}

// isWebSocket reports whether r asks to upgrade to WebSocket (RFC 6455):
// a GET without a body whose Connection header lists "upgrade" and whose
// Upgrade header lists "websocket", in any case.
func isWebSocket(r *http.Request) bool {
	return r.Method == http.MethodGet && r.ContentLength == 0 &&
		hasToken(r.Header, "Connection", "upgrade") && hasToken(r.Header, "Upgrade", "websocket")
}

// hasToken reports whether the comma-separated values of the header name
// include token, in any case.
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

// refuseSwitch fails a 101 answer to a request the proxy forwarded
// without its upgrade headers.
func refuseSwitch(res *http.Response) error {
	if res.StatusCode == http.StatusSwitchingProtocols {
		return errors.New("upstream switched protocols unasked")
	}
	return nil
}

// bufferBody reads the whole body of res, up to maxBuffered bytes, so
// that the reverse proxy sends nothing before upstream has ended it.
func bufferBody(res *http.Response) error {
	if err := refuseSwitch(res); err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxBuffered+1))
	res.Body.Close()
	if err != nil {
		return fmt.Errorf("buffer response: %w", err)
	}
	if len(b) > maxBuffered {
		return fmt.Errorf("buffer response: more than %d bytes", maxBuffered)
	}
	res.Body = io.NopCloser(bytes.NewReader(b))
	res.ContentLength = int64(len(b))
	res.TransferEncoding = nil
	head := res.Request != nil && res.Request.Method == http.MethodHead
	if !head && res.StatusCode != http.StatusNoContent && res.StatusCode != http.StatusNotModified {
		res.Header.Set("Content-Length", strconv.Itoa(len(b)))
	}
	return nil
}

// proxyError answers 502 when forwarding failed, and nothing when the
// client went away or the proxy is closing.
func proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	http.Error(w, "proxytest: "+err.Error(), http.StatusBadGateway)
}

// parseUpstream checks that s is an http:// URL on a loopback address and
// returns it with the host:port to dial.
func parseUpstream(s string) (*url.URL, string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, "", fmt.Errorf("proxytest: upstream: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, "", fmt.Errorf("proxytest: upstream %q: want http://host:port", s)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, "", fmt.Errorf("proxytest: upstream %q: not a loopback address", s)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	return u, net.JoinHostPort(host, port), nil
}

// idleListener hands out connections that CutIdle closes once idle.
type idleListener struct {
	net.Listener
	p *Proxy
}

func (l *idleListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	ic := &idleConn{Conn: c, p: l.p}
	ic.last.Store(time.Now().UnixNano())
	ic.mu.Lock()
	ic.timer = time.AfterFunc(time.Duration(l.p.idleCut.Load()), ic.check)
	ic.mu.Unlock()
	return ic, nil
}

// idleConn is a client's connection to the proxy that notes when a byte
// last passed, and closes itself when the proxy is in CutIdle mode and it
// has been idle for the period.
type idleConn struct {
	net.Conn
	p    *Proxy
	last atomic.Int64 // unix nanoseconds of the last byte read or written

	// mu guards timer and closed.
	mu     sync.Mutex
	timer  *time.Timer
	closed bool
}

func (c *idleConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *idleConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// check runs when the connection may have been idle for the period: it
// closes it if so (in CutIdle mode), or looks again when it could be.
func (c *idleConn) check() {
	period := time.Duration(c.p.idleCut.Load())
	idle := time.Since(time.Unix(0, c.last.Load()))
	cut := Mode(c.p.mode.Load()) == CutIdle && idle >= period
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if cut {
		c.closed = true
		c.p.cuts.Add(1)
		c.Conn.Close()
		return
	}
	wait := period - idle
	if wait <= 0 {
		wait = period
	}
	c.timer.Reset(wait)
}

func (c *idleConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.timer.Stop()
	c.mu.Unlock()
	return c.Conn.Close()
}
