package pebbletest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

// pebbleDefaultValidity is Pebble's default certificate lifetime, 90 days.
const pebbleDefaultValidity = 7776000 * time.Second

// TestIssue obtains certificates from Pebble with a real ACME client, with
// the challenge served by the test, and checks the chain, the lifetime and
// the order count.
func TestIssue(t *testing.T) {
	tests := []struct {
		name     string
		domain   string
		opts     Options
		chalType string // served by the test; "" for none (AlwaysValid)
		wantLife time.Duration
	}{
		{
			name:     "http-01 with 1h certificates",
			domain:   "edge.test",
			opts:     Options{CertificateValidity: time.Hour},
			chalType: "http-01",
			wantLife: time.Hour,
		},
		{
			name:     "tls-alpn-01 with default lifetime",
			domain:   "a.edge.test",
			chalType: "tls-alpn-01",
			wantLife: pebbleDefaultValidity,
		},
		{
			name:     "always valid, lifetime rounded up to a second",
			domain:   "b.edge.test",
			opts:     Options{AlwaysValid: true, CertificateValidity: 1500 * time.Millisecond},
			wantLife: 2 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := Start(t, tt.opts)
			c := newClient(t, s)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var prepare func(domain string, ch *acme.Challenge)
			switch tt.chalType {
			case "http-01":
				serveHTTP01(t, c, s.HTTPPort())
			case "tls-alpn-01":
				prepare = serveTLSALPN01(t, c, s.TLSPort()).expect
			}

			if n := s.Orders(); n != 0 {
				t.Fatalf("Orders() = %d before any order, want 0", n)
			}
			order := authorize(ctx, t, c, tt.domain, tt.chalType, prepare)
			if n := s.Orders(); n != 1 {
				t.Errorf("Orders() = %d after one order, want 1", n)
			}
			if n := s.OrdersFor(strings.ToUpper(tt.domain)); n != 1 {
				t.Errorf("OrdersFor(%q) = %d, want 1", strings.ToUpper(tt.domain), n)
			}
			if n := s.OrdersFor("other.test"); n != 0 {
				t.Errorf("OrdersFor(other.test) = %d, want 0", n)
			}

			chain := finalize(ctx, t, c, order, tt.domain)
			leaf := chain[0]
			intermediates := x509.NewCertPool()
			for _, cert := range chain[1:] {
				intermediates.AddCert(cert)
			}
			// Verified as of issuance: a 2s certificate may have expired.
			if _, err := leaf.Verify(x509.VerifyOptions{
				DNSName:       tt.domain,
				CurrentTime:   leaf.NotBefore,
				Roots:         s.IssuerRoots(),
				Intermediates: intermediates,
			}); err != nil {
				t.Errorf("issued chain does not verify against IssuerRoots: %v", err)
			}
			// Pebble's NotAfter is inclusive: NotBefore + lifetime - 1s.
			if got := leaf.NotAfter.Sub(leaf.NotBefore) + time.Second; got != tt.wantLife {
				t.Errorf("leaf lifetime = %v, want %v", got, tt.wantLife)
			}

			// The authorization is reused, so the second order needs no
			// challenge: it is ready as soon as it is created.
			again, err := c.AuthorizeOrder(ctx, acme.DomainIDs(tt.domain))
			if err != nil {
				t.Fatalf("second order: %v", err)
			}
			if again.Status != acme.StatusReady {
				t.Errorf("second order's status = %q, want %q (authorization reused)", again.Status, acme.StatusReady)
			}
			if n := s.Orders(); n != 2 {
				t.Errorf("Orders() = %d after two orders, want 2", n)
			}
			if n := s.OrdersFor(tt.domain); n != 2 {
				t.Errorf("OrdersFor(%q) = %d after two orders, want 2", tt.domain, n)
			}
		})
	}
}

// TestChallengeIsValidated checks that, without AlwaysValid, Pebble really
// fetches the challenge: a wrong answer makes the authorization invalid.
func TestChallengeIsValidated(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	c := newClient(t, s)
	serveHTTPPort(t, s.HTTPPort(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "not the key authorization")
	}))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	order, err := c.AuthorizeOrder(ctx, acme.DomainIDs("edge.test"))
	if err != nil {
		t.Fatal(err)
	}
	z, err := c.GetAuthorization(ctx, order.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Accept(ctx, challenge(t, z, "http-01")); err != nil {
		t.Fatal(err)
	}
	_, err = c.WaitAuthorization(ctx, z.URI)
	if authzErr := (*acme.AuthorizationError)(nil); !errors.As(err, &authzErr) {
		t.Fatalf("WaitAuthorization with a wrong answer: %v, want an *acme.AuthorizationError", err)
	}
	if n := s.Orders(); n != 1 {
		t.Errorf("Orders() = %d, want 1", n)
	}
}

// TestAPI checks what Start reports: loopback addresses, distinct ports,
// and an API that only ClientCAs makes trusted.
func TestAPI(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	if !strings.HasPrefix(s.DirectoryURL(), "https://127.0.0.1:") || !strings.HasSuffix(s.DirectoryURL(), "/dir") {
		t.Errorf("DirectoryURL() = %q, want https://127.0.0.1:PORT/dir", s.DirectoryURL())
	}
	if s.HTTPPort() <= 0 || s.TLSPort() <= 0 || s.HTTPPort() == s.TLSPort() {
		t.Errorf("HTTPPort() = %d, TLSPort() = %d: want two distinct ports", s.HTTPPort(), s.TLSPort())
	}

	tests := []struct {
		name    string
		roots   *x509.CertPool
		wantErr bool
	}{
		{name: "trusting ClientCAs", roots: s.ClientCAs()},
		{name: "trusting IssuerRoots", roots: s.IssuerRoots(), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tt.roots}}
			defer tr.CloseIdleConnections()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.DirectoryURL(), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("User-Agent", "pebbletest")
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if tt.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatal("GET directory succeeded, want a certificate error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET directory: status %d, want 200", resp.StatusCode)
			}
		})
	}
}

// TestPorts checks that given ports are passed through.
func TestPorts(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{HTTPPort: 5002, TLSPort: 5001})
	if s.HTTPPort() != 5002 || s.TLSPort() != 5001 {
		t.Errorf("HTTPPort(), TLSPort() = %d, %d, want 5002, 5001", s.HTTPPort(), s.TLSPort())
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string // substrings of the error; none for valid options
	}{
		{name: "zero", opts: Options{}},
		{name: "all set", opts: Options{HTTPPort: 80, TLSPort: 443, CertificateValidity: time.Minute, AlwaysValid: true}},
		{
			name: "every problem at once",
			opts: Options{HTTPPort: -1, TLSPort: 70000, CertificateValidity: -time.Second},
			want: []string{"Options.HTTPPort = -1", "Options.TLSPort = 70000", "Options.CertificateValidity = -1s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("validate() = nil, want errors naming %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestValiditySeconds(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want uint64
	}{
		{0, 0},
		{time.Nanosecond, 1},
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{time.Hour, 3600},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			if got := validitySeconds(tt.d); got != tt.want {
				t.Errorf("validitySeconds(%v) = %d, want %d", tt.d, got, tt.want)
			}
		})
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	for _, s := range []string{"abc", "defgh", "ij", "0123456789"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got, want := b.String(), "23456789"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// newClient returns an ACME client with a new account on s, trusting
// s.ClientCAs for the API.
func newClient(t *testing.T, s *Server) *acme.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.ClientCAs()}}
	t.Cleanup(tr.CloseIdleConnections)
	c := &acme.Client{
		Key:          newKey(t),
		DirectoryURL: s.DirectoryURL(),
		HTTPClient:   &http.Client{Transport: tr},
		UserAgent:    "pebbletest",
	}
	if _, err := c.Register(t.Context(), &acme.Account{}, acme.AcceptTOS); err != nil {
		t.Fatalf("register: %v", err)
	}
	return c
}

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// authorize places an order for domain and accepts a chalType challenge
// (any if chalType is "") for each pending authorization, calling prepare,
// if not nil, just before; it returns the order once it is ready.
func authorize(ctx context.Context, t *testing.T, c *acme.Client, domain, chalType string, prepare func(domain string, ch *acme.Challenge)) *acme.Order {
	t.Helper()
	order, err := c.AuthorizeOrder(ctx, acme.DomainIDs(domain))
	if err != nil {
		t.Fatalf("order %s: %v", domain, err)
	}
	for _, u := range order.AuthzURLs {
		z, err := c.GetAuthorization(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if z.Status != acme.StatusPending {
			continue
		}
		typ := chalType
		if typ == "" {
			typ = "http-01" // any: AlwaysValid does not look
		}
		ch := challenge(t, z, typ)
		if prepare != nil {
			prepare(z.Identifier.Value, ch)
		}
		if _, err := c.Accept(ctx, ch); err != nil {
			t.Fatalf("accept %s: %v", typ, err)
		}
		if _, err := c.WaitAuthorization(ctx, z.URI); err != nil {
			t.Fatalf("authorization of %s: %v", domain, err)
		}
	}
	order, err = c.WaitOrder(ctx, order.URI)
	if err != nil {
		t.Fatalf("order %s: %v", domain, err)
	}
	return order
}

// finalize sends a CSR for domain and returns the issued chain, leaf first.
func finalize(ctx context.Context, t *testing.T, c *acme.Client, order *acme.Order, domain string) []*x509.Certificate {
	t.Helper()
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{domain}}, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	ders, _, err := c.CreateCertFromOrder(ctx, order, csr, true)
	if err != nil {
		t.Fatalf("finalize: %v", err)
	}
	if len(ders) < 2 {
		t.Fatalf("got %d certificates, want a leaf and its intermediate", len(ders))
	}
	chain := make([]*x509.Certificate, len(ders))
	for i, der := range ders {
		if chain[i], err = x509.ParseCertificate(der); err != nil {
			t.Fatal(err)
		}
	}
	return chain
}

func challenge(t *testing.T, z *acme.Authorization, typ string) *acme.Challenge {
	t.Helper()
	for _, ch := range z.Challenges {
		if ch.Type == typ {
			return ch
		}
	}
	t.Fatalf("authorization of %s offers no %s challenge", z.Identifier.Value, typ)
	return nil
}

// serveHTTP01 answers HTTP-01 challenges for c on 127.0.0.1:port.
func serveHTTP01(t *testing.T, c *acme.Client, port int) {
	t.Helper()
	const prefix = "/.well-known/acme-challenge/"
	serveHTTPPort(t, port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		answer, err := c.HTTP01ChallengeResponse(token)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, answer)
	}))
}

// alpnResponder answers TLS-ALPN-01 challenges for c. Pebble's validator
// names the domain (SNI) but not the token, so the test tells it the token
// it expects for each domain before accepting the challenge.
type alpnResponder struct {
	c *acme.Client

	mu     sync.Mutex        // guards tokens
	tokens map[string]string // by lower-case domain
}

// serveTLSALPN01 answers TLS-ALPN-01 challenges for c on 127.0.0.1:port
// until the test ends.
func serveTLSALPN01(t *testing.T, c *acme.Client, port int) *alpnResponder {
	t.Helper()
	r := &alpnResponder{c: c, tokens: make(map[string]string)}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Listener.Close()
	srv.Listener = listen(t, port)
	srv.TLS = &tls.Config{NextProtos: []string{acme.ALPNProto}, GetCertificate: r.certificate}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return r
}

// expect is an authorize prepare func: it records ch's token for domain.
func (r *alpnResponder) expect(domain string, ch *acme.Challenge) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens[strings.ToLower(domain)] = ch.Token
}

func (r *alpnResponder) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	token, ok := r.tokens[strings.ToLower(hello.ServerName)]
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no tls-alpn-01 challenge expected for %q", hello.ServerName)
	}
	cert, err := r.c.TLSALPN01ChallengeCert(token, hello.ServerName)
	return &cert, err
}

// serveHTTPPort serves h on 127.0.0.1:port until the test ends.
func serveHTTPPort(t *testing.T, port int, h http.Handler) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = listen(t, port)
	srv.Start()
	t.Cleanup(srv.Close)
}

func listen(t *testing.T, port int) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
