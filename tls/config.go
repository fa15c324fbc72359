package edgetls

import (
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeworks/edge/edge"
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

// Config says how to terminate TLS. The zero value is a valid
// configuration, of plain HTTP (Off); New treats every zero field as its
// default.
type Config struct {
	// Mode is how TLS is terminated. Zero means Off.
	Mode Mode

	// Listen is the address the TLS listener serves on. In ACME mode its
	// port is where TLS-ALPN-01 challenges arrive (443 in production); a
	// self-signed certificate also names its host. Zero means none is
	// known: port 443, and no extra name.
	Listen string
	// HTTPListen, when set, is the address (host:port) of the plain-HTTP
	// server (port 80 in production) that serves HTTP-01 challenges and
	// redirects everything else to https. Zero means no HTTP-01.
	HTTPListen string

	// CertFile and KeyFile are the PEM files of the Files mode, which
	// needs both.
	CertFile, KeyFile string
	// ReloadInterval is how often the files are checked for changes.
	// Zero means 2s.
	ReloadInterval time.Duration

	// Domains are the names to obtain certificates for at start (ACME),
	// or extra names for the self-signed certificate. ACME mode needs at
	// least one, or OnDemand.
	Domains []string
	// Email is the ACME account's contact address (expiry notices). Zero
	// means none.
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
	// name, not one per node. Nil means StorageDir.
	Redis redis.UniversalClient

	// OnDemand obtains certificates at the first handshake for names
	// that OnDemandAllow or OnDemandAsk approve (ACME mode only; it needs
	// one of them).
	OnDemand bool
	// OnDemandAllow lists approved names: exact ("a.example.com") or one
	// leading label wildcard ("*.customers.example.com"). Zero means none.
	OnDemandAllow []string
	// OnDemandAsk is a URL asked GET URL?domain=NAME; a 200 answer
	// approves the name. Zero means none is asked.
	OnDemandAsk string
	// OnDemandRate bounds the approvals per minute, so a flood of names
	// cannot run up ACME orders. Zero means 10.
	OnDemandRate int

	// RenewCheckInterval is how often certificates are checked for
	// renewal. Zero means certmagic's default (10m).
	RenewCheckInterval time.Duration
	// RenewalWindowRatio is the part of a certificate's lifetime, at its
	// end, in which it is renewed, below 1. Zero means certmagic's default
	// (1/3).
	RenewalWindowRatio float64

	// Log receives what happens; nil means slog.Default().
	Log *slog.Logger
}

// WithDefaults returns c with every zero field that has a default of this
// package's own set to it. Mode stays as it is (zero means Off), and the
// fields whose default is certmagic's stay zero.
func (c Config) WithDefaults() Config {
	if c.ReloadInterval == 0 {
		c.ReloadInterval = 2 * time.Second
	}
	if c.OnDemandRate == 0 {
		c.OnDemandRate = 10
	}
	return c
}

// Validate reports every problem in c at once, each an *edge.FieldError
// that names the field and the fix. New calls it.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) { errs = append(errs, edge.Invalid(field, format, args...)) }
	mode := edge.FieldRef("Mode")
	switch c.Mode {
	case "", Off, SelfSigned:
	case Files:
		if c.CertFile == "" || c.KeyFile == "" {
			bad("Mode", "%q needs %s and %s (PEM files)", c.Mode, edge.FieldRef("CertFile"), edge.FieldRef("KeyFile"))
		}
	case ACME:
		if len(c.Domains) == 0 && !c.OnDemand {
			bad("Mode", "%q needs %s (at least one name) or %s", c.Mode, edge.FieldRef("Domains"), edge.FieldRef("OnDemand"))
		}
	default:
		bad("Mode", "%q is not a mode; use off, self-signed, files or acme", c.Mode)
	}
	if c.Mode != Files {
		for _, f := range []struct{ name, v string }{{"CertFile", c.CertFile}, {"KeyFile", c.KeyFile}} {
			if f.v != "" {
				bad(f.name, "only used when %s is %q", mode, Files)
			}
		}
	}
	if c.OnDemand && c.Mode != ACME {
		bad("OnDemand", "only used when %s is %q", mode, ACME)
	}
	if c.OnDemand && len(c.OnDemandAllow) == 0 && c.OnDemandAsk == "" {
		bad("OnDemand", "needs %s or %s, or every name on the internet could make the edge order certificates",
			edge.FieldRef("OnDemandAllow"), edge.FieldRef("OnDemandAsk"))
	}
	if c.HTTPListen != "" {
		if _, _, err := net.SplitHostPort(c.HTTPListen); err != nil {
			bad("HTTPListen", "%q is not host:port (e.g. :80): %w", c.HTTPListen, err)
		}
		if c.Mode == "" || c.Mode == Off {
			bad("HTTPListen", "only used with TLS (it redirects to https); set %s", mode)
		}
	}
	edge.CheckNotNegative(&errs, "OnDemandRate", c.OnDemandRate)
	edge.CheckNotNegative(&errs, "ReloadInterval", c.ReloadInterval)
	edge.CheckNotNegative(&errs, "RenewCheckInterval", c.RenewCheckInterval)
	if c.RenewalWindowRatio < 0 || c.RenewalWindowRatio >= 1 {
		bad("RenewalWindowRatio", "%v is not a part of a lifetime; use a value between 0 and 1, or zero for the default", c.RenewalWindowRatio)
	}
	return errors.Join(errs...)
}
