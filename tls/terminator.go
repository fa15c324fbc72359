package edgetls

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
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

// New prepares TLS as cfg says, with the zero fields of cfg meaning their
// defaults. For ACME it starts obtaining the certificates of cfg.Domains
// in the background and serves meanwhile; failures are logged with what to
// fix and retried. It returns an error only for a configuration that
// cannot work: one that cfg.Validate refuses, or a missing key file, say.
func New(cfg Config) (*Terminator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	cfg = cfg.WithDefaults()
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
	src, err := newFileSource(cfg.CertFile, cfg.KeyFile, cfg.Log)
	if err != nil {
		return err
	}
	t.wg.Go(func() { src.watch(ctx, cfg.ReloadInterval) })
	t.tls = &tls.Config{GetCertificate: src.getCertificate}
	t.expiry = func() (time.Time, bool) { return src.cert.Load().Leaf.NotAfter, true }
	leaf := src.cert.Load().Leaf
	t.summary = fmt.Sprintf("the certificate in %s (%s, until %s), reloaded when it changes", cfg.CertFile, leaf.Subject.CommonName, leaf.NotAfter.Format(time.DateOnly))
	return nil
}
