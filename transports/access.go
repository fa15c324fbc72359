package transports

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/edge/auth"
)

// access decides who may subscribe and publish:
//
//   - Without a JWT key every channel may be subscribed. With one, a
//     channel needs a token whose "channels" claim matches it, unless it
//     matches an --anonymous pattern.
//   - Publishing needs a publish key (any channel), or a token whose
//     "publish" claim matches the channel. Without a key or token it is
//     allowed only with --insecure-publish, or from loopback while no
//     publish key is set (see local). WebSocket clients may also publish
//     to --client-publish channels.
type access struct {
	verifier  *auth.Verifier // nil: no JWT key
	anonymous []string
	clientPub []string
	keys      [][]byte
	insecure  bool
	domains   []string // --domain: names of the edge besides loopback ones
	log       *slog.Logger

	failures   atomic.Int64 // refused credentials since start
	lastLogged atomic.Int64 // failures when last logged
	logEvery   atomic.Int64 // unix nanoseconds before which no failure is logged
}

func newAccess(cfg Config, log *slog.Logger) (*access, error) {
	a := &access{anonymous: cfg.Anonymous, clientPub: cfg.ClientPublish, insecure: cfg.InsecurePublish, domains: cfg.Domains, log: log}
	for _, k := range cfg.PublishKeys {
		a.keys = append(a.keys, []byte(k))
	}
	for _, p := range append(cfg.Anonymous[:len(cfg.Anonymous):len(cfg.Anonymous)], cfg.ClientPublish...) {
		if err := auth.ValidatePattern(p); err != nil {
			return nil, err
		}
	}
	if !cfg.TokensEnabled() {
		return a, nil
	}
	v, err := auth.New(auth.Config{Secret: []byte(cfg.JWTSecret), PublicKeyFiles: cfg.JWTPublicKeys, JWKSURL: cfg.JWKSURL,
		Audiences: cfg.JWTAudiences, Issuer: cfg.JWTIssuer, Log: log})
	if err != nil {
		return nil, err
	}
	a.verifier = v
	return a, nil
}

// identify returns the claims of the request's token, nil without one
// (or without JWT keys, when a token could only be a publish key).
func (a *access) identify(r *http.Request) (*auth.Claims, error) {
	if a.verifier == nil {
		return nil, nil
	}
	token, err := auth.TokenFromRequest(r)
	return a.claims(r, token, err)
}

// identifyPublisher is identify for publishing over HTTP, which takes
// credentials from the Authorization: Bearer header only: a cookie would
// let another site's form publish as its visitor, and a token in the URL
// leaks. Any other Authorization scheme is refused, with or without JWT
// keys.
func (a *access) identifyPublisher(r *http.Request) (*auth.Claims, error) {
	token, err := auth.BearerToken(r)
	return a.claims(r, token, err)
}

// claims returns the claims of token, which came from r with err: nil
// for no token, a publish key or no JWT keys.
func (a *access) claims(r *http.Request, token string, err error) (*auth.Claims, error) {
	if err == nil && token != "" && a.verifier != nil && a.keyIndex(token) < 0 {
		var claims *auth.Claims
		if claims, err = a.verifier.Verify(r.Context(), token); err == nil {
			return claims, nil
		}
	}
	if err != nil {
		a.refused(r, err)
	}
	return nil, err
}

// refused counts a refusal of credentials and logs it — the reason and
// the client's address, never the token — at most once a second, with the
// count since the last line, so a flood of bad tokens cannot flood the log.
func (a *access) refused(r *http.Request, err error) {
	n := a.failures.Add(1)
	now := time.Now().UnixNano()
	next := a.logEvery.Load()
	if now < next || !a.logEvery.CompareAndSwap(next, now+int64(time.Second)) {
		return
	}
	_, _, reason := edge.Classify(err)
	a.log.InfoContext(r.Context(), "credentials refused", "reason", reason, "client", remoteIP(r.RemoteAddr), "path", r.URL.Path,
		"refusals_since_last_line", n-a.lastLogged.Swap(n), "refusals", n)
}

// verify checks a token sent over a WebSocket (refresh).
func (a *access) verify(ctx context.Context, token string) (*auth.Claims, error) {
	if a.verifier == nil {
		return nil, fmt.Errorf("%w: no token key is configured on this edge", edge.ErrBadRequest)
	}
	return a.verifier.Verify(ctx, token)
}

// subscribe reports whether claims (nil: no token) may subscribe to
// channel.
func (a *access) subscribe(claims *auth.Claims, channel string) error {
	if a.verifier == nil || auth.MatchAny(a.anonymous, channel) || (claims != nil && claims.CanSubscribe(channel)) {
		return nil
	}
	a.failures.Add(1)
	if claims == nil {
		return fmt.Errorf("%w: channel %q needs a token (Authorization: Bearer, access_token= or the edge_token cookie)", edge.ErrUnauthorized, channel)
	}
	return fmt.Errorf("%w: the token does not allow subscribing to %q", edge.ErrForbidden, channel)
}

// publish reports whether the request may publish to channel over HTTP
// with claims (from identifyPublisher), and who publishes, for rate
// limits: a publish key, a token subject or the client's IP (never the
// secret itself).
func (a *access) publish(r *http.Request, claims *auth.Claims, channel string) (who string, err error) {
	p := a.publisher(r, claims)
	return p.who, a.publishBy(p, claims, channel)
}

// httpPublisher is who publishes with a request, as publish finds it: a
// request publishing many messages finds it once.
type httpPublisher struct {
	who   string // for rate limits, as publish returns it
	key   bool   // with a publish key: every channel
	local bool   // from loopback (see local)
}

// publisher returns who publishes with r and claims.
func (a *access) publisher(r *http.Request, claims *auth.Claims) httpPublisher {
	if token, _ := auth.BearerToken(r); token != "" {
		if i := a.keyIndex(token); i >= 0 {
			return httpPublisher{who: fmt.Sprintf("key %d", i), key: true}
		}
	}
	p := httpPublisher{local: a.local(r)}
	if claims != nil {
		p.who = "subject " + claims.Subject
	} else {
		p.who = "address " + remoteIP(r.RemoteAddr)
	}
	return p
}

// publishBy reports whether p, with claims, may publish to channel.
func (a *access) publishBy(p httpPublisher, claims *auth.Claims, channel string) error {
	if p.key {
		return nil
	}
	return a.publishAs(claims, channel, p.local, false)
}

// publishAs reports whether claims (nil: anonymous) may publish to channel
// from a client that is on loopback or not; ws says it is a WebSocket
// client, which --client-publish lets publish.
func (a *access) publishAs(claims *auth.Claims, channel string, fromLoopback, ws bool) error {
	err := a.publishRight(claims, channel, fromLoopback, ws)
	if err != nil {
		a.failures.Add(1)
	}
	return err
}

func (a *access) publishRight(claims *auth.Claims, channel string, fromLoopback, ws bool) error {
	switch {
	case claims != nil && claims.CanPublish(channel):
		return nil
	case ws && auth.MatchAny(a.clientPub, channel):
		return nil
	case a.insecure || (fromLoopback && len(a.keys) == 0):
		return nil
	case claims != nil:
		return fmt.Errorf("%w: the token does not allow publishing to %q", edge.ErrForbidden, channel)
	case len(a.keys) == 0 && a.verifier == nil:
		return fmt.Errorf("%w: publishing without a key is for clients on loopback that name the edge localhost, a loopback address or its --domain; "+
			"from elsewhere it needs a publish key (--publish-key) or --insecure-publish", edge.ErrForbidden)
	}
	return fmt.Errorf("%w: publishing needs Authorization: Bearer <publish key or token with a publish right>", edge.ErrUnauthorized)
}

// keyIndex returns which publish key token is, or -1, comparing with
// every key in constant time.
func (a *access) keyIndex(token string) int {
	found := -1
	for i, k := range a.keys {
		if subtle.ConstantTimeCompare([]byte(token), k) == 1 {
			found = i
		}
	}
	return found
}

// local reports whether r may publish as a loopback client: it comes from
// loopback and names the edge by a loopback name or address (localhost,
// *.localhost, 127.0.0.0/8, ::1) or by a --domain, whatever the edge
// listens on. A page that DNS rebinding pointed at 127.0.0.1 connects from
// loopback too, but its browser sends the page's own name as Host.
func (a *access) local(r *http.Request) bool {
	return loopback(r.RemoteAddr) && localHost(r.Host, a.domains)
}

// localHost reports whether host, a Host header with or without a port,
// is a loopback name or address or one of domains.
func localHost(host string, domains []string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	host = strings.TrimSuffix(host, ".") // a fully qualified name
	const tld = ".localhost"             // loopback by RFC 6761; browsers resolve it so themselves
	if strings.EqualFold(host, tld[1:]) || (len(host) > len(tld) && strings.EqualFold(host[len(host)-len(tld):], tld)) {
		return true
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().IsLoopback()
	}
	for _, d := range domains {
		if strings.EqualFold(host, strings.TrimSuffix(d, ".")) {
			return true
		}
	}
	return false
}

// loopback reports whether a remote address is on this machine.
func loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(strings.TrimPrefix(host, "::ffff:"))
	return ip != nil && ip.IsLoopback()
}
