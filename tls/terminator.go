package edgetls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
)

// Mode is how the edge terminates TLS.
type Mode string

// The modes.
const (
	Off        Mode = "off"         // plain HTTP, e.g. behind a load balancer that terminates TLS
	SelfSigned Mode = "self-signed" // a certificate generated at start, for local development
	Files      Mode = "files"       // a certificate and key from PEM files, reloaded when they change
	ACME       Mode = "acme"        // certificates from an ACME CA (Let's Encrypt), renewed automatically
)

// LetsEncrypt is the ACME directory used when Config.CA is zero.
const LetsEncrypt = certmagic.LetsEncryptProductionCA

// modernSuites are the TLS 1.2 cipher suites offered: forward secret and
// authenticated encryption only, no CBC. (TLS 1.3 suites are not
// configurable and all modern.)
var modernSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Config says how to terminate TLS. The zero value is Off.
type Config struct {
	Mode Mode

	// Listen is the address the TLS listener serves on. In ACME mode its
	// port is where TLS-ALPN-01 challenges arrive (443 in production).
	Listen string
	// HTTPListen, when set, is the address of the plain-HTTP server
	// (port 80 in production) that serves HTTP-01 challenges and
	// redirects everything else to https. Zero means no HTTP-01.
	HTTPListen string

	// CertFile and KeyFile are the PEM files of the Files mode.
	CertFile, KeyFile string
	// ReloadInterval is how often the files are checked for changes.
	// Zero means 2s.
	ReloadInterval time.Duration

	// Domains are the names to obtain certificates for at start (ACME),
	// or extra names for the self-signed certificate.
	Domains []string
	// Email is the ACME account's contact address (expiry notices).
	Email string
	// CA is the ACME directory URL. Zero means Let's Encrypt.
	CA string
	// CARoots are the roots that the ACME CA's own HTTPS endpoint is
	// verified with. Nil means the system's roots.
	CARoots *x509.CertPool
	// StorageDir keeps ACME accounts, certificates and locks on disk when
	// Redis is nil. Zero means certmagic's default
	// ($XDG_DATA_HOME/certmagic or ~/.local/share/certmagic).
	StorageDir string
	// Redis, when set, keeps ACME accounts, certificates and locks in
	// Redis, shared by every node: a fleet obtains one certificate per
	// name, not one per node.
	Redis redis.UniversalClient

	// OnDemand obtains certificates at the first handshake for names
	// that OnDemandAllow or OnDemandAsk approve (ACME mode).
	OnDemand bool
	// OnDemandAllow lists approved names: exact ("a.example.com") or one
	// leading label wildcard ("*.customers.example.com").
	OnDemandAllow []string
	// OnDemandAsk is a URL asked GET URL?domain=NAME; a 200 answer
	// approves the name.
	OnDemandAsk string
	// OnDemandRate bounds the approvals per minute, so a flood of names
	// cannot run up ACME orders. Zero means 10.
	OnDemandRate int

	// RenewCheckInterval is how often certificates are checked for
	// renewal. Zero means certmagic's default (10m).
	RenewCheckInterval time.Duration
	// RenewalWindowRatio is the part of a certificate's lifetime, at its
	// end, in which it is renewed. Zero means certmagic's default (1/3).
	RenewalWindowRatio float64

	// Log receives what happens; nil means slog.Default().
	Log *slog.Logger
}

// Terminator holds the TLS configuration of one edge node and the work
// that keeps its certificates fresh. Make one with New; Close stops it.
type Terminator struct {
	mode    Mode
	tls     *tls.Config
	issuer  *certmagic.ACMEIssuer
	cache   *certmagic.Cache
	summary string
	expiry  func() (time.Time, bool) // see Expiry; nil when TLS is off
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New prepares TLS as cfg says. For ACME it starts obtaining the
// certificates of cfg.Domains in the background and serves meanwhile;
// failures are logged with what to fix and retried. It returns an error
// only for a configuration that cannot work (a missing key file, say).
func New(cfg Config) (*Terminator, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Terminator{mode: cfg.Mode, cancel: cancel}
	var err error
	switch cfg.Mode {
	case "", Off:
		t.mode = Off
	case SelfSigned:
		err = t.selfSigned(cfg)
	case Files:
		err = t.files(ctx, cfg)
	case ACME:
		err = t.acme(ctx, cfg)
	default:
		err = fmt.Errorf("tls: unknown mode %q; use off, self-signed, files or acme", cfg.Mode)
	}
	if err != nil {
		t.Close()
		return nil, err
	}
	if t.tls != nil {
		t.tls.MinVersion = tls.VersionTLS12
		t.tls.CipherSuites = modernSuites
		t.tls.NextProtos = append([]string{"h2", "http/1.1"}, t.tls.NextProtos...)
	}
	return t, nil
}

// TLSConfig returns the configuration to serve with (HTTP/2 and
// HTTP/1.1 by ALPN, TLS 1.2 at least, Go's modern cipher suites), or nil
// when TLS is off.
func (t *Terminator) TLSConfig() *tls.Config { return t.tls }

// Summary says in a line what the edge serves, for its start-up banner.
func (t *Terminator) Summary() string { return t.summary }

// HTTPHandler is the handler of the plain-HTTP server: ACME HTTP-01
// challenges, and a permanent redirect to https on httpsPort for the rest.
func (t *Terminator) HTTPHandler(httpsPort string) http.Handler {
	redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if httpsPort != "443" {
			host = net.JoinHostPort(host, httpsPort)
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
	if t.issuer == nil {
		return redirect
	}
	return t.issuer.HTTPChallengeHandler(redirect)
}

// Expiry returns when the earliest certificate the edge serves expires:
// the self-signed or file certificate, or the earliest ACME certificate of
// the configured domains (not of on-demand names). It reports false when
// TLS is off or no certificate was obtained yet. Safe for concurrent use.
func (t *Terminator) Expiry() (time.Time, bool) {
	if t.expiry == nil {
		return time.Time{}, false
	}
	return t.expiry()
}

// Close stops reloading and renewing.
func (t *Terminator) Close() {
	t.cancel()
	t.wg.Wait()
	if t.cache != nil {
		t.cache.Stop()
	}
}

func (t *Terminator) selfSigned(cfg Config) error {
	names := cfg.Domains
	if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && host != "" {
		names = append(names[:len(names):len(names)], host)
	}
	cert, err := selfSigned(names, time.Now())
	if err != nil {
		return err
	}
	t.tls = &tls.Config{Certificates: []tls.Certificate{*cert}}
	t.expiry = func() (time.Time, bool) { return cert.Leaf.NotAfter, true }
	t.summary = fmt.Sprintf("a self-signed certificate (SHA-256 %s): browsers warn, curl needs -k", fingerprint(cert.Certificate[0]))
	cfg.Log.Warn("serving https with a self-signed certificate, for development only", "sha256", fingerprint(cert.Certificate[0]))
	return nil
}

func (t *Terminator) files(ctx context.Context, cfg Config) error {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return errors.New("tls: files mode needs --cert FILE and --key FILE")
	}
	src, err := newFileSource(cfg.CertFile, cfg.KeyFile, cfg.Log)
	if err != nil {
		return err
	}
	interval := cfg.ReloadInterval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	t.wg.Go(func() { src.watch(ctx, interval) })
	t.tls = &tls.Config{GetCertificate: src.getCertificate}
	t.expiry = func() (time.Time, bool) { return src.cert.Load().Leaf.NotAfter, true }
	leaf := src.cert.Load().Leaf
	t.summary = fmt.Sprintf("the certificate in %s (%s, until %s), reloaded when it changes", cfg.CertFile, leaf.Subject.CommonName, leaf.NotAfter.Format(time.DateOnly))
	return nil
}
