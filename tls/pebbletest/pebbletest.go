// Package pebbletest is a test helper, in the manner of net/http/httptest:
// it runs Let's Encrypt's Pebble ACME server inside the test process.
// Only tests import it; it is public because the tests of tls and cmd/edge
// share it.
//
// Start serves Pebble's ACME API over HTTPS on a free 127.0.0.1 port, with
// a DNS resolver of its own (also on 127.0.0.1) that answers 127.0.0.1 for
// every name, so Pebble's validation authority reaches the code under test
// for any test domain ("edge.test", "a.edge.test"). It starts no process
// and writes no files. Everything stops in t.Cleanup.
//
//	ca := pebbletest.Start(t, pebbletest.Options{CertificateValidity: time.Hour})
//	// serve HTTP-01 on 127.0.0.1:ca.HTTPPort(), then point the ACME client
//	// at ca.DirectoryURL(), trusting ca.ClientCAs() for the API, and verify
//	// what it obtained against ca.IssuerRoots():
//	if n := ca.OrdersFor("edge.test"); n != 1 {
//		t.Errorf("%d orders for edge.test, want 1", n)
//	}
//
// Pebble is made deterministic: it does not sleep before validating, does
// not reject good nonces, and reuses an account's valid authorization for a
// name every time (as Let's Encrypt does), so a second order for a validated
// name is ready at once, with no challenge. Its CA keys are ECDSA P-256.
// Its log is kept in memory and shown only when the test fails.
//
// Start may be called from parallel tests: Pebble reads its switches from
// environment variables when it is constructed, so Start sets them only for
// that moment, under a package mutex, rather than with t.Setenv (which
// would forbid t.Parallel).
package pebbletest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

const (
	// shutdownTimeout bounds how long cleanup waits for Pebble's HTTPS
	// server and the DNS resolver to finish what they are serving.
	shutdownTimeout = 10 * time.Second

	// profileName is the one certificate profile Pebble offers, so that
	// orders naming no profile get it (Pebble picks one at random).
	profileName = "default"

	// caaIdentity is what Pebble's own main uses when none is configured.
	caaIdentity = "pebble.letsencrypt.org"

	maxOrderBody = 1 << 20  // bytes of a new-order response read to count it
	logKeep      = 64 << 10 // bytes of Pebble's log kept
)

// Options configures Start. The zero value is a valid configuration.
type Options struct {
	// HTTPPort is the port on 127.0.0.1 that Pebble's validation authority
	// connects to for HTTP-01 challenges. Zero picks a port that was free
	// when Start ran; serve the challenges there.
	HTTPPort int

	// TLSPort is the port on 127.0.0.1 that Pebble's validation authority
	// connects to for TLS-ALPN-01 challenges. Zero picks a free port.
	TLSPort int

	// CertificateValidity is the lifetime of issued leaf certificates,
	// rounded up to whole seconds; Pebble sets NotAfter to NotBefore plus
	// this less one second (NotAfter is inclusive). Zero means Pebble's
	// default of 90 days. Use a short one to test renewal.
	CertificateValidity time.Duration

	// AlwaysValid makes Pebble accept every challenge without contacting
	// anything, for tests that are not about challenges.
	AlwaysValid bool
}

// validate reports every problem with o at once.
func (o Options) validate() error {
	var errs []error
	for _, p := range []struct {
		name string
		port int
	}{{"HTTPPort", o.HTTPPort}, {"TLSPort", o.TLSPort}} {
		if p.port < 0 || p.port > 65535 {
			errs = append(errs, fmt.Errorf("pebbletest: Options.%s = %d: want 0 (pick a free port) or 1-65535", p.name, p.port))
		}
	}
	if o.CertificateValidity < 0 {
		errs = append(errs, fmt.Errorf("pebbletest: Options.CertificateValidity = %v: want 0 (Pebble's default) or more", o.CertificateValidity))
	}
	return errors.Join(errs...)
}

// validitySeconds converts d to Pebble's profile validity period: whole
// seconds, rounded up; 0 tells Pebble to use its default.
func validitySeconds(d time.Duration) uint64 {
	return uint64((d + time.Second - 1) / time.Second)
}

// Server is a Pebble ACME server started by Start. Its methods are safe for
// concurrent use. The zero value is not usable.
type Server struct {
	dirURL       string
	newOrderPath string // path of the newOrder endpoint, from the directory
	clientCAs    *x509.CertPool
	clientCAPEM  []byte
	issuerRoots  *x509.CertPool
	httpPort     int
	tlsPort      int

	mu        sync.Mutex     // guards orders and ordersFor
	orders    int            // new orders Pebble created
	ordersFor map[string]int // of those, per identifier value
}

// Start runs Pebble in-process for t over HTTPS on 127.0.0.1:0, with its
// DNS resolver, and registers t.Cleanup to stop both. It fails t if opts is
// invalid or anything cannot start.
//
// A free HTTPPort or TLSPort chosen by Start is free when Start returns,
// but nothing holds it for the test: listen on it promptly.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if err := opts.validate(); err != nil {
		t.Fatal(err)
	}

	// Registered first, so it runs last and shows the shutdown too.
	logs := &tailBuffer{max: logKeep}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebbletest: Pebble's log (last %d bytes at most):\n%s", logKeep, logs.String())
		}
	})
	logger := log.New(logs, "", log.Lmicroseconds)

	s := &Server{
		httpPort:  opts.HTTPPort,
		tlsPort:   opts.TLSPort,
		ordersFor: make(map[string]int),
	}
	if s.httpPort == 0 || s.tlsPort == 0 {
		httpPort, tlsPort, err := freePorts()
		if err != nil {
			t.Fatalf("pebbletest: %v", err)
		}
		if s.httpPort == 0 {
			s.httpPort = httpPort
		}
		if s.tlsPort == 0 {
			s.tlsPort = tlsPort
		}
	}

	resolver := startResolver(t)

	apiCert, err := selfSignedCert()
	if err != nil {
		t.Fatalf("pebbletest: certificate for Pebble's API: %v", err)
	}
	s.clientCAs = x509.NewCertPool()
	s.clientCAs.AddCert(apiCert.Leaf)
	s.clientCAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: apiCert.Leaf.Raw})

	var (
		authority *ca.CAImpl
		validator *va.VAImpl
		frontEnd  wfe.WebFrontEndImpl
	)
	withPebbleEnv(opts.AlwaysValid, func() {
		store := db.NewMemoryStore()
		authority = ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
			profileName: {
				Description:    "pebbletest's only profile",
				ValidityPeriod: validitySeconds(opts.CertificateValidity),
			},
		})
		validator = va.New(logger, s.httpPort, s.tlsPort, false, resolver, store)
		frontEnd = wfe.New(logger, store, validator, authority, []string{caaIdentity}, false, false, 0, 0)
	})
	s.issuerRoots = x509.NewCertPool()
	for i := range authority.GetNumberOfRootCerts() {
		s.issuerRoots.AddCert(authority.GetRootCert(i).Cert)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		stopValidator(t, validator)
		t.Fatalf("pebbletest: listen: %v", err)
	}
	addr := ln.Addr().String()
	s.dirURL = "https://" + addr + wfe.DirectoryPath

	api := frontEnd.Handler()
	if s.newOrderPath, err = newOrderPath(api, addr); err != nil {
		ln.Close()
		stopValidator(t, validator)
		t.Fatalf("pebbletest: %v", err)
	}
	srv := &http.Server{
		Handler:           s.countOrders(api),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{apiCert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: shutdownTimeout,
		ErrorLog:          logger,
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		err := srv.Shutdown(ctx)
		if err != nil {
			srv.Close()
		}
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			t.Errorf("pebbletest: serve Pebble's API: %v", serr)
		}
		if err != nil {
			// A handler may still be running and submit a validation,
			// so the validator's queue must stay open.
			t.Errorf("pebbletest: shut down Pebble's API: %v; leaving its validator running", err)
			return
		}
		stopValidator(t, validator)
	})
	return s
}

// DirectoryURL returns the URL of Pebble's ACME directory,
// "https://127.0.0.1:PORT/dir".
func (s *Server) DirectoryURL() string { return s.dirURL }

// ClientCAs returns a new pool holding the self-signed certificate of
// Pebble's HTTPS API (for 127.0.0.1, ::1 and localhost): the roots an ACME
// client must trust to talk to Pebble, such as certmagic's
// ACMEIssuer.TrustedRoots.
func (s *Server) ClientCAs() *x509.CertPool { return s.clientCAs.Clone() }

// ClientCAPEM returns ClientCAs' certificate as PEM, for an ACME client
// configured with a file (the edge's --acme-ca-roots).
func (s *Server) ClientCAPEM() []byte { return bytes.Clone(s.clientCAPEM) }

// IssuerRoots returns a new pool holding the roots that the certificates
// Pebble issues chain to, for verifying a chain that the code under test
// serves. Pebble makes new roots each time it starts.
func (s *Server) IssuerRoots() *x509.CertPool { return s.issuerRoots.Clone() }

// HTTPPort returns the port on 127.0.0.1 where Pebble validates HTTP-01
// challenges.
func (s *Server) HTTPPort() int { return s.httpPort }

// TLSPort returns the port on 127.0.0.1 where Pebble validates TLS-ALPN-01
// challenges.
func (s *Server) TLSPort() int { return s.tlsPort }

// Orders returns how many orders Pebble has created so far: new-order
// requests that it answered with 201 Created. Rejected requests are not
// counted.
func (s *Server) Orders() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.orders
}

// OrdersFor returns how many of the orders counted by Orders include the
// identifier value id, a DNS name (compared case-insensitively) or an IP
// address.
func (s *Server) OrdersFor(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ordersFor[strings.ToLower(id)]
}

// countOrders wraps Pebble's ACME handler to count the orders it creates,
// reading each new-order response for its identifiers.
func (s *Server) countOrders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != s.newOrderPath {
			next.ServeHTTP(w, r)
			return
		}
		rec := &orderRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status != http.StatusCreated {
			return
		}
		var order struct {
			Identifiers []struct {
				Value string `json:"value"`
			} `json:"identifiers"`
		}
		// An order too large to record, or one that does not decode, is
		// still an order.
		_ = json.Unmarshal(rec.body.Bytes(), &order)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.orders++
		for _, id := range order.Identifiers {
			s.ordersFor[strings.ToLower(id.Value)]++
		}
	})
}

// orderRecorder passes a new-order response through, keeping its status
// and the first maxOrderBody bytes of its body.
type orderRecorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *orderRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *orderRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if room := maxOrderBody - r.body.Len(); room > 0 {
		r.body.Write(p[:min(len(p), room)])
	}
	return r.ResponseWriter.Write(p)
}

// newOrderPath asks Pebble's ACME handler for its directory, as a client
// at addr would, and returns the path of its newOrder endpoint.
func newOrderPath(api http.Handler, addr string) (string, error) {
	req := httptest.NewRequest(http.MethodGet, "https://"+addr+wfe.DirectoryPath, nil)
	req.Header.Set("User-Agent", "pebbletest")
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	var dir struct {
		NewOrder string `json:"newOrder"`
	}
	if rec.Code != http.StatusOK {
		return "", fmt.Errorf("pebble's directory: status %d: %s", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &dir); err != nil {
		return "", fmt.Errorf("pebble's directory: %w", err)
	}
	u, err := url.Parse(dir.NewOrder)
	if err != nil || u.Path == "" {
		return "", fmt.Errorf("pebble's directory: newOrder %q is no URL", dir.NewOrder)
	}
	return u.Path, nil
}

// envMu serializes withPebbleEnv, so parallel Starts do not see each
// other's settings.
var envMu sync.Mutex

// withPebbleEnv runs construct with the environment variables that Pebble's
// constructors (va.New, wfe.New) read set for a deterministic test server,
// then restores them. Nothing else in the process reads them.
func withPebbleEnv(alwaysValid bool, construct func()) {
	vars := map[string]string{
		"PEBBLE_VA_NOSLEEP":      "1",   // validate at once, not after 0-5s
		"PEBBLE_VA_ALWAYS_VALID": "0",   // set below
		"PEBBLE_WFE_NONCEREJECT": "0",   // default: reject 5% of good nonces
		"PEBBLE_AUTHZREUSE":      "100", // default: 50%; 0 would still reuse 1%
	}
	if alwaysValid {
		vars["PEBBLE_VA_ALWAYS_VALID"] = "1"
	}
	envMu.Lock()
	defer envMu.Unlock()
	for k, v := range vars {
		old, had := os.LookupEnv(k)
		os.Setenv(k, v)
		if had {
			defer os.Setenv(k, old)
		} else {
			defer os.Unsetenv(k)
		}
	}
	construct()
}

// stopValidator ends the goroutine that va.New starts to drain the
// validator's task queue, which Pebble offers no way to stop: it closes
// the queue, an unexported channel. Call it only once nothing can submit a
// validation any more (Pebble's API has shut down), as a send would panic.
// Validations already under way end on their own, within Pebble's 15s
// validation timeout; with the resolver stopped they fail at once.
func stopValidator(t testing.TB, v *va.VAImpl) {
	f := reflect.ValueOf(v).Elem().FieldByName("tasks")
	if !f.IsValid() || f.Kind() != reflect.Chan || f.Type().ChanDir() != reflect.BothDir {
		t.Logf("pebbletest: cannot stop Pebble's validator: va.VAImpl has no tasks channel in this Pebble version; one goroutine is left running")
		return
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Close()
}

// startResolver starts a DNS server on a free 127.0.0.1 port that answers
// every A query with 127.0.0.1 and every other query with no records, and
// registers t.Cleanup to stop it. It returns the server's address.
//
// It serves TCP only: that is all Pebble's validator uses with a custom
// resolver. It answers AAAA with nothing, because the validator dials the
// first address it gets, AAAA ones first, and challenges are served on
// 127.0.0.1.
func startResolver(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pebbletest: resolver: %v", err)
	}
	started := make(chan struct{})
	srv := &dns.Server{
		Listener:          ln,
		Handler:           dns.HandlerFunc(answerLoopback),
		NotifyStartedFunc: func() { close(started) },
	}
	served := make(chan error, 1)
	go func() { served <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-served:
		t.Fatalf("pebbletest: resolver: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.ShutdownContext(ctx); err != nil {
			t.Errorf("pebbletest: stop resolver: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("pebbletest: resolver: %v", err)
		}
	})
	return ln.Addr().String()
}

// answerLoopback answers A queries with 127.0.0.1, whatever the name.
func answerLoopback(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, q := range req.Question {
		if q.Qtype == dns.TypeA && q.Qclass == dns.ClassINET {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
				A:   net.IPv4(127, 0, 0, 1),
			})
		}
	}
	_ = w.WriteMsg(m) // the validator reports a lost answer
}

// freePorts returns two distinct loopback TCP ports that were free a
// moment ago.
func freePorts() (int, int, error) {
	var ports [2]int
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, fmt.Errorf("free port: %w", err)
		}
		defer ln.Close() // held until both are picked, so they differ
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}

// selfSignedCert makes the ECDSA P-256 certificate of Pebble's HTTPS API,
// valid for 127.0.0.1, ::1 and localhost for a day, with Leaf set.
func selfSignedCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "pebbletest API " + strconv.FormatInt(now.UnixNano(), 36)},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// tailBuffer is an io.Writer keeping the last max bytes written to it.
// Pebble's goroutines may write to it after the test has ended, which
// t.Log would not allow.
type tailBuffer struct {
	max int

	mu  sync.Mutex // guards buf
	buf []byte
}

var _ io.Writer = (*tailBuffer)(nil)

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
