package edgetls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/edgeworks/edge/tls/redisstore"
)

func (t *Terminator) acme(ctx context.Context, cfg Config) error {
	ca := cfg.CA
	if ca == "" {
		ca = LetsEncrypt
	}
	log := newZapLogger(cfg.Log)
	var storage certmagic.Storage = &certmagic.FileStorage{Path: cfg.StorageDir}
	where := "disk (" + cfg.StorageDir + ")"
	switch {
	case cfg.Redis != nil:
		storage, where = redisstore.New(cfg.Redis, ""), "Redis, shared by the fleet"
	case cfg.StorageDir == "":
		storage, where = certmagic.Default.Storage, "disk (certmagic's default directory)"
	}
	var magic *certmagic.Config
	t.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: cfg.RenewCheckInterval,
		Logger:             log,
	})
	magic = certmagic.New(t.cache, certmagic.Config{
		Storage:            storage,
		Logger:             log,
		RenewalWindowRatio: cfg.RenewalWindowRatio,
		// Let's Encrypt ended OCSP in 2025; stapling would only fail.
		OCSP: certmagic.OCSPConfig{DisableStapling: true},
	})
	if cfg.OnDemand {
		magic.OnDemand = &certmagic.OnDemandConfig{DecisionFunc: newApprover(cfg).decide}
	}
	listenHost, tlsPort := splitPort(cfg.Listen)
	_, httpPort := splitPort(cfg.HTTPListen)
	t.issuer = certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA:                   ca,
		Email:                cfg.Email,
		Agreed:               true,
		TrustedRoots:         cfg.CARoots,
		DisableHTTPChallenge: cfg.HTTPListen == "",
		// The edge's own listeners answer the challenges: certmagic finds
		// these ports taken and leaves them to the edge.
		ListenHost:     listenHost,
		AltTLSALPNPort: tlsPort,
		AltHTTPPort:    httpPort,
		Logger:         log,
	})
	magic.Issuers = []certmagic.Issuer{t.issuer}
	t.tls = magic.TLSConfig()
	t.expiry = func() (time.Time, bool) { return earliest(t.cache, cfg.Domains) }

	challenges := "TLS-ALPN-01 on " + cfg.Listen
	if cfg.HTTPListen != "" {
		challenges = "HTTP-01 on " + cfg.HTTPListen + " and " + challenges
	}
	t.summary = fmt.Sprintf("ACME certificates from %s for %s (challenges: %s; storage: %s)", ca, describeNames(cfg), challenges, where)
	if len(cfg.Domains) > 0 {
		t.wg.Go(func() { manage(ctx, magic, cfg.Domains, ca, cfg.Log) })
	}
	return nil
}

func describeNames(cfg Config) string {
	names := strings.Join(cfg.Domains, ", ")
	if cfg.OnDemand {
		if names != "" {
			names += ", and "
		}
		names += "approved names on demand"
	}
	return names
}

func splitPort(addr string) (host string, port int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0
	}
	var n int
	fmt.Sscan(p, &n)
	return h, n
}

// manage obtains (or loads) the certificates of domains and keeps them
// renewed. A first attempt that fails is explained in the log with the
// fix; certmagic then keeps retrying with backoff in the background.
func manage(ctx context.Context, magic *certmagic.Config, domains []string, ca string, log *slog.Logger) {
	err := magic.ManageSync(ctx, domains)
	if err == nil {
		log.Info("certificates ready", "domains", domains)
		return
	}
	if ctx.Err() != nil {
		return
	}
	log.Error("no certificate yet; serving without it and retrying", "domains", domains, "err", explain(err, ca))
	if err := magic.ManageAsync(ctx, domains); err != nil && ctx.Err() == nil {
		log.Error("cannot manage certificates", "domains", domains, "err", explain(err, ca))
	}
}

// explain turns an ACME failure into what to fix.
func explain(err error, ca string) error {
	var problem acme.Problem
	if errors.As(err, &problem) {
		switch {
		case strings.HasSuffix(problem.Type, ":connection"), strings.HasSuffix(problem.Type, ":unauthorized"),
			strings.HasSuffix(problem.Type, ":dns"), strings.HasSuffix(problem.Type, ":incorrectResponse"):
			return fmt.Errorf("the CA could not validate the domain (%s): point its DNS at this node and let the CA reach port 80 (--http-listen) or port 443 (--listen) here: %w", problem.Detail, err)
		case strings.HasSuffix(problem.Type, ":rateLimited"):
			return fmt.Errorf("the CA's rate limit was hit; certmagic retries later, or use --acme-ca with a staging CA while testing: %w", err)
		case strings.HasSuffix(problem.Type, ":rejectedIdentifier"):
			return fmt.Errorf("the CA will not issue for this name (%s); check --domain: %w", problem.Detail, err)
		}
	}
	var netErr net.Error
	var urlErr *url.Error
	if errors.As(err, &netErr) || errors.As(err, &urlErr) || strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("cannot reach the ACME CA at %s: check --acme-ca and that this machine can reach it: %w", ca, err)
	}
	return err
}

// approver decides which names get certificates on demand.
type approver struct {
	allow []string
	ask   string
	http  *http.Client

	mu     sync.Mutex
	tokens float64 // mu guards tokens and last: a bucket refilled at rate per minute
	last   time.Time
	rate   float64
}

func newApprover(cfg Config) *approver {
	rate := float64(cfg.OnDemandRate)
	return &approver{
		allow: cfg.OnDemandAllow, ask: cfg.OnDemandAsk,
		http: &http.Client{Timeout: 5 * time.Second},
		rate: rate, tokens: rate, last: time.Now(),
	}
}

// decide approves name or says why not; certmagic refuses the handshake,
// without any ACME order, when it returns an error.
func (a *approver) decide(ctx context.Context, name string) error {
	ok, err := a.approved(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("tls: on-demand: %q is not an approved name", name)
	}
	if !a.take() {
		return fmt.Errorf("tls: on-demand: more than %v new names a minute; %q must wait", a.rate, name)
	}
	return nil
}

func (a *approver) approved(ctx context.Context, name string) (bool, error) {
	if MatchName(a.allow, name) {
		return true, nil
	}
	if a.ask == "" {
		return false, nil
	}
	u, err := url.Parse(a.ask)
	if err != nil {
		return false, fmt.Errorf("tls: --on-demand-ask %q: %w", a.ask, err)
	}
	q := u.Query()
	q.Set("domain", name)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return false, fmt.Errorf("tls: on-demand: asking %s about %q: %w", a.ask, name, err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

func (a *approver) take() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	a.tokens = min(a.rate, a.tokens+now.Sub(a.last).Minutes()*a.rate)
	a.last = now
	if a.tokens < 1 {
		return false
	}
	a.tokens--
	return true
}

// MatchName reports whether name is one of patterns: an exact name, or
// "*." and a suffix that matches exactly one more label. Comparison
// ignores case.
func MatchName(patterns []string, name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == name {
			return true
		}
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			label, rest, found := strings.Cut(name, ".")
			if found && label != "" && rest == suffix {
				return true
			}
		}
	}
	return false
}

// earliest returns the earliest expiry among the cached certificates of
// names; false when none is cached.
func earliest(cache *certmagic.Cache, names []string) (at time.Time, ok bool) {
	for _, name := range names {
		for _, c := range cache.AllMatchingCertificates(name) {
			if c.Leaf != nil && (!ok || c.Leaf.NotAfter.Before(at)) {
				at, ok = c.Leaf.NotAfter, true
			}
		}
	}
	return at, ok
}
