package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwksServer serves a JWK set that the test can change, and counts the
// requests it answers.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex // guards status, body, n
	status int
	body   []byte
	n      int
	hit    chan struct{} // gets a value after a request (never blocks: cap 1)
}

func newJWKSServer(t *testing.T, status int, body []byte) *jwksServer {
	s := &jwksServer{status: status, body: body, hit: make(chan struct{}, 1)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.n++
		status, body := s.status, s.body
		s.mu.Unlock()
		select {
		case s.hit <- struct{}{}:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// set changes what the server answers and returns the requests so far:
// every request after that count gets the new answer.
func (s *jwksServer) set(status int, body []byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
	return s.n
}

func (s *jwksServer) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// waitRequests waits until the server has answered n requests.
func (s *jwksServer) waitRequests(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for s.requests() < n {
		select {
		case <-s.hit:
		case <-timeout:
			t.Fatalf("the JWKS server answered %d requests, want %d", s.requests(), n)
		}
	}
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	b, err := k.Bytes()
	if err != nil {
		panic(err)
	}
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64u(b[1:33]), "y": b64u(b[33:])}
}

func okpJWK(kid string, k ed25519.PublicKey) map[string]any {
	return map[string]any{"kty": "OKP", "kid": kid, "crv": "Ed25519", "alg": "EdDSA", "x": b64u(k)}
}

func jwks(keys ...map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	return b
}

// jwksVerifier returns a Verifier of the JWKS at srv, on a clock that only
// the test moves, and what it logs.
func jwksVerifier(t *testing.T, srv *jwksServer, cfg Config) (*Verifier, *fakeClock, *syncBuffer) {
	t.Helper()
	log := &syncBuffer{}
	cfg.JWKSURL, cfg.Log = srv.URL+"/.well-known/jwks.json", slogTo(log)
	v := newVerifier(t, cfg)
	clock := newFakeClock()
	v.now = clock.Now
	return v, clock, log
}

// Keys of each type come from the JWKS; a kid picks its key, which must
// fit the token's algorithm; tokens without kid try every key of their
// type.
func TestJWKS(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, 200, jwks(
		rsaJWK("r1", &k.rsa.PublicKey), ecJWK("e1", &k.ec.PublicKey), okpJWK("o1", k.ed.Public().(ed25519.PublicKey)),
		rsaJWK("r2", &k.rsa2.PublicKey),
		map[string]any{"kty": "oct", "kid": "s1", "k": b64u([]byte(testSecret))},
	))
	v, _, log := jwksVerifier(t, srv, Config{})
	if !v.Enabled() {
		t.Fatal("not Enabled with a JWKS")
	}
	if !strings.Contains(log.String(), `kids=r1,e1,o1,r2`) || !strings.Contains(log.String(), `kty \"oct\" is not supported`) {
		t.Errorf("log %q does not tell the keys loaded and skipped", log.String())
	}
	now := time.Now()
	for _, tc := range []struct {
		name  string
		token string
		kind  error // nil: accepted
	}{
		{"RS256 by kid", sign(t, jwt.SigningMethodRS256, k.rsa, "r1", claimsFor(now)), nil},
		{"RS256 by the other kid", sign(t, jwt.SigningMethodRS256, k.rsa2, "r2", claimsFor(now)), nil},
		{"ES256 by kid", sign(t, jwt.SigningMethodES256, k.ec, "e1", claimsFor(now)), nil},
		{"EdDSA by kid", sign(t, jwt.SigningMethodEdDSA, k.ed, "o1", claimsFor(now)), nil},
		{"RS256 without kid", sign(t, jwt.SigningMethodRS256, k.rsa2, "", claimsFor(now)), nil},
		{"ES256 without kid", sign(t, jwt.SigningMethodES256, k.ec, "", claimsFor(now)), nil},
		{"kid of another key", sign(t, jwt.SigningMethodRS256, k.rsa, "r2", claimsFor(now)), ErrInvalid},
		{"RS256 naming an EC key", sign(t, jwt.SigningMethodRS256, k.rsa, "e1", claimsFor(now)), ErrInvalid},
		{"EdDSA naming an RSA key", sign(t, jwt.SigningMethodEdDSA, k.ed, "r1", claimsFor(now)), ErrInvalid},
		{"HS256 naming the oct key", sign(t, jwt.SigningMethodHS256, []byte(testSecret), "s1", claimsFor(now)), ErrInvalid},
		{"HS256 with the JWKS's RSA modulus", sign(t, jwt.SigningMethodHS256, k.rsa.N.Bytes(), "r1", claimsFor(now)), ErrInvalid},
		{"ES256 by an unknown signer", sign(t, jwt.SigningMethodES256, k.ec2, "", claimsFor(now)), ErrInvalid},
		{"kid not a string", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claimsFor(now))
			tok.Header["kid"] = 7
			s, _ := tok.SignedString(k.rsa)
			return s
		}(), ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tc.token)
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			checkRefused(t, err, tc.kind, tc.token)
		})
	}
	if n := srv.requests(); n != 1 {
		t.Errorf("%d requests to the JWKS URL, want 1: known kids need no refetch", n)
	}
}

// When the issuer rotates its key, a token with the new kid makes the edge
// refetch the JWKS, and verifies without a restart.
func TestJWKSRotation(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, 200, jwks(rsaJWK("k1", &k.rsa.PublicKey)))
	v, _, log := jwksVerifier(t, srv, Config{})
	ctx := context.Background()
	now := time.Now()
	old := sign(t, jwt.SigningMethodRS256, k.rsa, "k1", claimsFor(now))
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatal(err)
	}

	srv.set(200, jwks(rsaJWK("k2", &k.rsa2.PublicKey)))
	c, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, k.rsa2, "k2", claimsFor(now)))
	if err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if c.Subject != "42" {
		t.Fatalf("claims %+v", c)
	}
	if n := srv.requests(); n != 2 {
		t.Fatalf("%d requests, want 2 (one at New, one refetch)", n)
	}
	if !strings.Contains(log.String(), "kids=k2") {
		t.Errorf("log %q does not tell the new key", log.String())
	}

	// The old key is gone: its tokens are refused, and cannot refetch yet.
	_, err = v.Verify(ctx, old)
	checkRefused(t, err, ErrInvalid, old)
	if !strings.Contains(err.Error(), `no key with kid "k1"`) {
		t.Errorf("error %q does not name the kid", err)
	}
	if n := srv.requests(); n != 2 {
		t.Fatalf("%d requests, want still 2", n)
	}
}

// Unknown kids refetch at most once per 10s, however many tokens name
// them, concurrent or not.
func TestJWKSRefetchLimit(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, 200, jwks(rsaJWK("k1", &k.rsa.PublicKey)))
	v, clock, _ := jwksVerifier(t, srv, Config{})
	ctx := context.Background()
	ghost := sign(t, jwt.SigningMethodRS256, k.rsa2, "ghost", claimsFor(time.Now()))
	verifyGhost := func() {
		_, err := v.Verify(ctx, ghost)
		checkRefused(t, err, ErrInvalid, ghost)
	}

	for range 5 {
		verifyGhost()
	}
	if n := srv.requests(); n != 2 {
		t.Fatalf("%d requests after 5 unknown kids, want 2", n)
	}
	clock.Advance(minRefetch - time.Second)
	verifyGhost()
	if n := srv.requests(); n != 2 {
		t.Fatalf("%d requests 9s later, want 2", n)
	}
	clock.Advance(time.Second)
	verifyGhost()
	if n := srv.requests(); n != 3 {
		t.Fatalf("%d requests 10s later, want 3", n)
	}

	clock.Advance(minRefetch)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(verifyGhost)
	}
	wg.Wait()
	if n := srv.requests(); n != 4 {
		t.Fatalf("%d requests after 20 concurrent unknown kids, want 4", n)
	}
}

// A JWKS that cannot be fetched at start does not stop the edge: tokens
// that need it fail with a clear error until a fetch works.
func TestJWKSDownAtStart(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, http.StatusServiceUnavailable, []byte("down"))
	v, clock, log := jwksVerifier(t, srv, Config{Secret: []byte(testSecret)})
	if !strings.Contains(log.String(), "cannot fetch the JWKS") || !strings.Contains(log.String(), "503 Service Unavailable") {
		t.Fatalf("log %q does not warn about the JWKS", log.String())
	}
	ctx := context.Background()
	now := time.Now()
	tok := sign(t, jwt.SigningMethodRS256, k.rsa, "k1", claimsFor(now))

	_, err := v.Verify(ctx, tok)
	checkRefused(t, err, ErrKeysUnavailable, tok)
	if !strings.Contains(err.Error(), "token keys not loaded yet (the JWKS could not be fetched); try again later") {
		t.Errorf("unclear error %q", err)
	}
	// HS256 needs no JWKS.
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claimsFor(now))); err != nil {
		t.Errorf("HS256 token refused while the JWKS is down: %v", err)
	}

	srv.set(200, jwks(rsaJWK("k1", &k.rsa.PublicKey)))
	_, err = v.Verify(ctx, tok)
	checkRefused(t, err, ErrKeysUnavailable, tok) // the refetch limit holds
	if n := srv.requests(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	clock.Advance(minRefetch)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("refused after the JWKS came back: %v", err)
	}
}

// An unreachable JWKS URL is no error for New either.
func TestJWKSUnreachable(t *testing.T) {
	srv := newJWKSServer(t, 200, jwks())
	srv.Close()
	v, _, log := jwksVerifier(t, srv, Config{})
	if !strings.Contains(log.String(), "cannot fetch the JWKS") {
		t.Fatalf("log %q does not warn", log.String())
	}
	tok := sign(t, jwt.SigningMethodES256, testKeys().ec, "", claimsFor(time.Now()))
	_, err := v.Verify(context.Background(), tok)
	checkRefused(t, err, ErrKeysUnavailable, tok)
}

// A JWKS response is bounded.
func TestJWKSTooLarge(t *testing.T) {
	k := testKeys()
	body := jwks(rsaJWK("k1", &k.rsa.PublicKey))
	body = append(body[:len(body)-1], []byte(`,"pad":"`+strings.Repeat("x", maxJWKSBytes)+`"}`)...)
	srv := newJWKSServer(t, 200, body)
	v, _, log := jwksVerifier(t, srv, Config{})
	if !strings.Contains(log.String(), "larger than 1048576 bytes") {
		t.Fatalf("log %q does not say the JWKS is too large", log.String())
	}
	tok := sign(t, jwt.SigningMethodRS256, k.rsa, "k1", claimsFor(time.Now()))
	_, err := v.Verify(context.Background(), tok)
	checkRefused(t, err, ErrKeysUnavailable, tok)
}

// Run refreshes the JWKS on its own, keeps the last good keys when a
// fetch fails, and returns when its context ends.
func TestRun(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, 200, jwks(rsaJWK("k1", &k.rsa.PublicKey)))
	v, _, log := jwksVerifier(t, srv, Config{JWKSRefresh: time.Millisecond})
	ctx := context.Background()
	now := time.Now()
	// Use up the refetch that an unknown kid may trigger (the clock does
	// not move): from here on only Run fetches.
	ghost := sign(t, jwt.SigningMethodRS256, k.rsa2, "ghost", claimsFor(now))
	_, err := v.Verify(ctx, ghost)
	checkRefused(t, err, ErrInvalid, ghost)

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.Run(runCtx)
	}()

	// Rotate; once the server answered twice more, Run has stored the
	// first of those answers.
	n := srv.set(200, jwks(rsaJWK("k2", &k.rsa2.PublicKey)))
	srv.waitRequests(t, n+2)
	tok := sign(t, jwt.SigningMethodRS256, k.rsa2, "k2", claimsFor(now))
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("the key Run fetched is not used: %v", err)
	}

	// The JWKS fails: the last keys stay.
	n = srv.set(500, nil)
	srv.waitRequests(t, n+2)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("keys dropped when a refresh failed: %v", err)
	}
	if !strings.Contains(log.String(), "keeping the keys from the last fetch") {
		t.Errorf("log %q does not warn about the failed refresh", log.String())
	}

	cancel()
	<-done
}

// Without a JWKS URL, Run returns at once.
func TestRunWithoutJWKS(t *testing.T) {
	v := newVerifier(t, Config{Secret: []byte(testSecret)})
	v.Run(context.Background()) // returns, or the test times out
}

// A configured HTTP client fetches the JWKS (here: over TLS).
func TestJWKSHTTPClient(t *testing.T) {
	k := testKeys()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(jwks(ecJWK("e1", &k.ec.PublicKey)))
	}))
	defer srv.Close()
	v := newVerifier(t, Config{JWKSURL: srv.URL, HTTPClient: srv.Client()})
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodES256, k.ec, "e1", claimsFor(time.Now()))); err != nil {
		t.Fatal(err)
	}
}

// parseJWKS keeps the keys the edge can use and says why it skips others.
func TestParseJWKS(t *testing.T) {
	k := testKeys()
	small := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537}
	good := []map[string]any{rsaJWK("r", &k.rsa.PublicKey), ecJWK("e", &k.ec.PublicKey), okpJWK("o", k.ed.Public().(ed25519.PublicKey))}
	edit := func(m map[string]any, kv ...any) map[string]any {
		c := map[string]any{}
		for k, v := range m {
			c[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	for _, tc := range []struct {
		name string
		key  any
		why  string
	}{
		{"oct", map[string]any{"kty": "oct", "k": "c2VjcmV0"}, `kty "oct" is not supported`},
		{"P-384", edit(good[1], "crv", "P-384"), `EC curve "P-384" is not supported; use P-256`},
		{"X25519", edit(good[2], "crv", "X25519"), `OKP curve "X25519" is not supported`},
		{"short RSA", rsaJWK("s", small), "RSA key of 1024 bits is too short"},
		{"even e", edit(good[0], "e", b64u([]byte{1, 0, 0})), `"e" 65536 is not a valid RSA exponent`},
		{"huge e", edit(good[0], "e", b64u([]byte{1, 0, 0, 0, 1})), `"e" is too large`},
		{"encryption key", edit(good[0], "use", "enc"), `use "enc" is not "sig"`},
		{"RS512", edit(good[0], "alg", "RS512"), `alg "RS512" is not supported for kty RSA`},
		{"EC with alg RS256", edit(good[1], "alg", "RS256"), `alg "RS256" is not supported for kty EC`},
		{"bad base64", edit(good[0], "n", "!!!"), `"n" is not base64url`},
		{"missing x", edit(good[2], "x", ""), `"x" is missing`},
		{"short x", edit(good[1], "x", b64u([]byte{1, 2, 3})), `"x" is 3 bytes, want 32`},
		{"not on the curve", edit(good[1], "y", b64u(make([]byte, 32))), "not a P-256 point"},
		{"not an object", "key", "not a JWK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"keys": []any{good[0], tc.key, good[1], good[2]}})
			keys, skipped, err := parseJWKS(body)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 3 || keyIDs(keys) != "r,e,o" {
				t.Errorf("keys %s, want r,e,o", keyIDs(keys))
			}
			if len(skipped) != 1 || !strings.Contains(skipped[0], tc.why) || !strings.HasPrefix(skipped[0], "key 1") {
				t.Errorf("skipped %q, want key 1 saying %q", skipped, tc.why)
			}
		})
	}

	// "Ed25519" (RFC 9864) names the same algorithm as "EdDSA".
	if keys, _, _ := parseJWKS(jwks(edit(good[2], "alg", "Ed25519"))); len(keys) != 1 {
		t.Error(`alg "Ed25519" refused`)
	}
	for _, body := range []string{`not json`, `{"keys":{}}`, `{}`, `[]`} {
		if _, _, err := parseJWKS([]byte(body)); err == nil {
			t.Errorf("parseJWKS(%s) succeeded", body)
		}
	}
	many := make([]map[string]any, maxJWKSKeys+1)
	for i := range many {
		many[i] = good[2]
	}
	if keys, skipped, _ := parseJWKS(jwks(many...)); len(keys) != maxJWKSKeys || len(skipped) != 1 {
		t.Errorf("%d keys and %d skipped of %d", len(keys), len(skipped), len(many))
	}
}

// PEM keys and a JWKS work side by side: a kid the JWKS does not know
// falls back to the PEM keys, after one refetch.
func TestJWKSWithPEMKeys(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, 200, jwks(rsaJWK("k1", &k.rsa.PublicKey)))
	v, _, _ := jwksVerifier(t, srv, Config{PublicKeyFiles: []string{writeFile(t, "ec.pem", pemOf(t, k.ec.Public()))}})
	ctx := context.Background()
	now := time.Now()
	for _, tok := range []string{
		sign(t, jwt.SigningMethodRS256, k.rsa, "k1", claimsFor(now)),
		sign(t, jwt.SigningMethodES256, k.ec, "", claimsFor(now)),
		sign(t, jwt.SigningMethodES256, k.ec, "issuer-2", claimsFor(now)),
	} {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Errorf("refused: %v", err)
		}
	}
	if n := srv.requests(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

// A client that has gone away triggers no refetch and uses up none of
// the allowance.
func TestJWKSRefetchCancelled(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, 200, jwks(rsaJWK("k1", &k.rsa.PublicKey)))
	v, _, _ := jwksVerifier(t, srv, Config{})
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	srv.set(200, jwks(rsaJWK("k2", &k.rsa2.PublicKey)))
	tok := sign(t, jwt.SigningMethodRS256, k.rsa2, "k2", claimsFor(time.Now()))
	_, err := v.Verify(gone, tok)
	checkRefused(t, err, ErrInvalid, tok)
	if n := srv.requests(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("refused: %v", err)
	}
}
