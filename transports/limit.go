package transports

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/transports/internal/hijack"
)

// bucket is a token bucket: rate tokens a second, at most rate at once.
// The zero bucket is full. It is not safe for concurrent use.
type bucket struct {
	used float64   // tokens taken and not yet refilled
	last time.Time // when used was last brought up to date
}

// take takes a token at now, or reports how long until one is there.
func (b *bucket) take(rate float64, now time.Time) (ok bool, wait time.Duration) {
	if !b.last.IsZero() {
		b.used = max(0, b.used-now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.used+1 > rate {
		return false, time.Duration((b.used + 1 - rate) / rate * float64(time.Second))
	}
	b.used++
	return true, 0
}

// full reports whether the bucket has refilled by now, so forgetting it
// changes nothing.
func (b *bucket) full(rate float64, now time.Time) bool {
	return b.used-now.Sub(b.last).Seconds()*rate <= 0
}

// maxBuckets bounds the keys a rateLimiter remembers; past it the full
// buckets (which hold no state) are forgotten.
const maxBuckets = 100_000

// rateLimiter keeps a bucket per key (a client IP, a publish key, a token
// subject).
type rateLimiter struct {
	rate float64

	mu      sync.Mutex
	buckets map[string]*bucket // mu guards buckets
}

func newRateLimiter(perSecond int) *rateLimiter {
	return &rateLimiter{rate: float64(perSecond), buckets: make(map[string]*bucket)}
}

// allow takes a token for key, or returns an error wrapping
// edge.ErrRateLimited that says when to try again.
func (l *rateLimiter) allow(key, what string) error {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.sweepLocked(now)
		}
		b = new(bucket)
		l.buckets[key] = b
	}
	ok, wait := b.take(l.rate, now)
	if ok {
		return nil
	}
	return rateLimited(what, l.rate, wait)
}

func (l *rateLimiter) sweepLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.full(l.rate, now) {
			delete(l.buckets, k)
		}
	}
}

// connLimitsKey finds a connection's limits in its requests' contexts.
type connLimitsKey struct{}

// connLimits are the rates of one client connection, shared by the
// requests on it (HTTP/2 streams run concurrently).
type connLimits struct {
	mu         sync.Mutex
	subs       bucket // mu guards subs and subscribed
	subscribed bool   // a subscribe request came on the connection
}

// withConnLimits is http.Server.ConnContext: each connection gets its
// limits.
func withConnLimits(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connLimitsKey{}, limitsOf(c))
}

// limitsOf returns the limits of the client connection under c: those the
// connLimiter's connection keeps, so that a long-poll connection given
// back to the server (hijack.Listener.GiveBack) keeps them too, or new
// ones for a connection that did not come through a connLimiter.
func limitsOf(c net.Conn) *connLimits {
	for {
		switch v := c.(type) {
		case *limitedConn:
			return &v.limits
		case *hijack.ReplayConn:
			c = v.Conn
		case *tls.Conn:
			c = v.NetConn()
		default:
			return new(connLimits)
		}
	}
}

// connSubscribes takes a subscribe from the request's connection at rate a
// second, or refuses.
func connSubscribes(r *http.Request, rate int) error {
	l, ok := r.Context().Value(connLimitsKey{}).(*connLimits)
	if !ok {
		return nil // served outside Run
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok, wait := l.subs.take(float64(rate), time.Now()); !ok {
		return rateLimited("subscribes on one connection", float64(rate), wait)
	}
	return nil
}

// firstSubscribe reports whether r is the first subscribe request on its
// connection, and notes that one came.
func firstSubscribe(r *http.Request) bool {
	l, ok := r.Context().Value(connLimitsKey{}).(*connLimits)
	if !ok {
		return true // served outside Run: every request is new
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	first := !l.subscribed
	l.subscribed = true
	return first
}

// rateLimitedError is a rate-limit refusal with the wait a client is told
// (Retry-After).
type rateLimitedError struct {
	error
	wait time.Duration
}

func (e rateLimitedError) Unwrap() error { return e.error }

func rateLimited(what string, rate float64, wait time.Duration) error {
	return rateLimitedError{fmt.Errorf("%w: more than %v %s a second; retry in %v", edge.ErrRateLimited, rate, what, wait.Round(time.Millisecond)), wait}
}

// setRetryAfter sets Retry-After (whole seconds, at least 1) for a rate
// limit refusal.
func setRetryAfter(w http.ResponseWriter, err error) {
	if e, ok := err.(rateLimitedError); ok {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(e.wait.Seconds())))))
	}
}

// connLimiter is a listener that bounds connections in all and per client
// IP. Over a limit a connection is told so (plain HTTP only: 429 with
// Retry-After) and closed at once.
type connLimiter struct {
	net.Listener
	max, perIP int
	plain      bool // connections speak plain HTTP (no TLS on top)

	mu    sync.Mutex
	total int            // mu guards total and byIP
	byIP  map[string]int // open connections per client IP
}

func newConnLimiter(ln net.Listener, max, perIP int, plain bool) *connLimiter {
	return &connLimiter{Listener: ln, max: max, perIP: perIP, plain: plain, byIP: make(map[string]int)}
}

// tooManyConns is the answer to a connection over a limit.
var tooManyConns = func() []byte {
	body := `{"error":{"code":"too_many_connections","message":"too many connections from this address or in all; try again later"}}`
	return fmt.Appendf(nil, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}()

// Accept returns the next connection within the limits.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c.RemoteAddr().String())
		l.mu.Lock()
		ok := l.total < l.max && l.byIP[ip] < l.perIP
		if ok {
			l.total++
			l.byIP[ip]++
		}
		l.mu.Unlock()
		if ok {
			return &limitedConn{Conn: c, l: l, ip: ip}, nil
		}
		if l.plain {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(tooManyConns)
		}
		c.Close()
	}
}

func (l *connLimiter) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byIP[ip]--; l.byIP[ip] == 0 {
		delete(l.byIP, ip)
	}
}

// limitedConn gives its place back when closed, and answers the edge's
// JSON error where net/http would refuse a request in plain text (see
// jsonRefusal).
type limitedConn struct {
	net.Conn
	l      *connLimiter
	ip     string
	once   sync.Once
	wd     writeDeadline // zero but on a stream's connection, which hijacked it
	limits connLimits    // the rates of the requests on it
}

// SetWriteDeadline sets t, coarsely on a stream's connection.
func (c *limitedConn) SetWriteDeadline(t time.Time) error {
	if !c.wd.set(t) {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines.
func (c *limitedConn) SetDeadline(t time.Time) error {
	c.wd.forget()
	return c.Conn.SetDeadline(t)
}

// Write writes p, or the JSON error in place of a canned refusal of
// net/http's, reporting p written.
func (c *limitedConn) Write(p []byte) (int, error) {
	if answer := jsonRefusal(p); answer != nil {
		if _, err := c.Conn.Write(answer); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// CloseWrite half-closes a TCP connection. net/http does so after a
// refusal it answers while the client may still be sending (431), so
// that the client reads the answer before the connection resets; it
// looks for the method on the connection it was given.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}

// remoteIP is the IP of a host:port address (the address itself when it
// has no port).
func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
