package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgeworks/edge/edge"
)

// Bounds on what a JWKS URL may hand the edge.
const (
	// maxJWKSBytes bounds a JWKS response body.
	maxJWKSBytes = 1 << 20
	// maxJWKSKeys bounds the usable keys taken from one JWKS: a token
	// without kid is tried against each key of its type.
	maxJWKSKeys = 64
	// minRefetch is the least time between two fetches that tokens (with
	// an unknown kid, or while no JWKS was fetched yet) trigger.
	minRefetch = 10 * time.Second
)

// jwksSource is the key set at a JWKS URL, fetched at start, refreshed by
// Run and refetched when a token names an unknown key.
//
// Fetches never overlap: a caller that finds one under way waits for it
// instead of starting another. No lock is held during the fetch.
type jwksSource struct {
	url    string
	client *http.Client
	log    *slog.Logger // with the URL, its password redacted
	now    func() time.Time

	mu         sync.Mutex    // guards the fields below
	keys       []pubKey      // from the last successful fetch
	loaded     bool          // a fetch has succeeded
	kids       string        // the key ids of keys, to log changes
	lastForced time.Time     // when tokens last triggered a fetch
	fetching   chan struct{} // closed when the fetch under way ends; nil: none
}

// snapshot returns the current keys (never modified after a fetch, so
// shared) and whether any fetch has succeeded.
func (s *jwksSource) snapshot() ([]pubKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys, s.loaded
}

// refresh fetches the key set, or waits for the fetch under way; a fetch
// takes at most DefaultJWKSTimeout.
//
// A forced refresh (asked for by a token) fetches only if minRefetch has
// passed since the last forced fetch, so tokens with made-up kids cannot
// make the edge hammer the JWKS URL. Its fetch is not cut short when ctx
// (the client's request) ends, so a client that hangs up cannot waste the
// allowance; it still waits no longer than ctx for a fetch under way.
func (s *jwksSource) refresh(ctx context.Context, forced bool) {
	s.mu.Lock()
	if ch := s.fetching; ch != nil {
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return
	}
	if forced {
		now := s.now()
		if ctx.Err() != nil || now.Sub(s.lastForced) < minRefetch {
			s.mu.Unlock()
			return
		}
		s.lastForced = now
		ctx = context.WithoutCancel(ctx)
	}
	ch := make(chan struct{})
	s.fetching = ch
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, DefaultJWKSTimeout)
	keys, skipped, err := s.fetch(ctx)
	cancel()

	kids := keyIDs(keys)
	s.mu.Lock()
	s.fetching = nil
	close(ch)
	wasLoaded, changed := s.loaded, !s.loaded || kids != s.kids
	if err == nil {
		s.keys, s.loaded, s.kids = keys, true, kids
	}
	s.mu.Unlock()

	switch {
	case err != nil && wasLoaded:
		s.log.Warn("auth: cannot fetch the JWKS; keeping the keys from the last fetch", "err", err)
	case err != nil:
		s.log.Warn("auth: cannot fetch the JWKS; tokens that need its keys are refused until a fetch works", "err", err)
	case changed:
		s.log.Info("auth: JWKS loaded", "keys", len(keys), "kids", kids)
		for _, why := range skipped {
			s.log.Warn("auth: JWKS key skipped", "why", why)
		}
	}
}

// fetch gets and parses the key set.
func (s *jwksSource) fetch(ctx context.Context) (keys []pubKey, skipped []string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("the JWKS URL answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("the JWKS is larger than %d bytes", maxJWKSBytes)
	}
	return parseJWKS(body)
}

// jwk is one JSON Web Key (RFC 7517), with the members the edge reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS returns the usable keys of a JWK set: RSA, EC on P-256 and OKP
// Ed25519 signing keys. Keys it cannot use are skipped, with the reason,
// so one exotic key does not take the others down; a body that is no JWK
// set is an error.
func parseJWKS(body []byte) (keys []pubKey, skipped []string, err error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, nil, fmt.Errorf("the JWKS is not a JSON JWK set: %w", err)
	}
	if set.Keys == nil {
		return nil, nil, errors.New(`the JWKS has no "keys" array`)
	}
	for i, raw := range set.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: not a JWK: %v", i, err))
			continue
		}
		k, err := j.pubKey()
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %v", i, edge.Clip(j.Kid), err))
			continue
		}
		if len(keys) == maxJWKSKeys {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): more than %d usable keys", i, edge.Clip(j.Kid), maxJWKSKeys))
			continue
		}
		keys = append(keys, k)
	}
	return keys, skipped, nil
}

// pubKey returns the key j describes, if the edge can verify with it.
func (j *jwk) pubKey() (pubKey, error) {
	if j.Use != "" && j.Use != "sig" {
		return pubKey{}, fmt.Errorf("use %q is not \"sig\"", edge.Clip(j.Use))
	}
	var (
		k   pubKey
		err error
	)
	switch j.Kty {
	case "RSA":
		k, err = j.rsa()
	case "EC":
		k, err = j.ec()
	case "OKP":
		k, err = j.okp()
	default:
		return pubKey{}, fmt.Errorf("kty %q is not supported; use RSA, EC (P-256) or OKP (Ed25519)", edge.Clip(j.Kty))
	}
	if err != nil {
		return pubKey{}, err
	}
	// alg is optional; when present it must be the one algorithm the edge
	// verifies with this kind of key. "Ed25519" is RFC 9864's name.
	if j.Alg != "" && j.Alg != k.alg && !(k.alg == algEdDSA && j.Alg == "Ed25519") {
		return pubKey{}, fmt.Errorf("alg %q is not supported for kty %s; the edge verifies %s with it", edge.Clip(j.Alg), j.Kty, k.alg)
	}
	k.kid = j.Kid
	return k, nil
}

func (j *jwk) rsa() (pubKey, error) {
	n, err := b64(j.N, "n", 0)
	if err != nil {
		return pubKey{}, err
	}
	e, err := b64(j.E, "e", 0)
	if err != nil {
		return pubKey{}, err
	}
	if len(e) > 4 {
		return pubKey{}, errors.New(`"e" is too large`)
	}
	var exp int
	for _, b := range e {
		exp = exp<<8 | int(b)
	}
	if exp < 3 || exp%2 == 0 || exp > 1<<31-1 {
		return pubKey{}, fmt.Errorf(`"e" %d is not a valid RSA exponent`, exp)
	}
	return acceptKey(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp})
}

func (j *jwk) ec() (pubKey, error) {
	if j.Crv != "P-256" {
		return pubKey{}, fmt.Errorf("EC curve %q is not supported; use P-256 (ES256)", edge.Clip(j.Crv))
	}
	x, err := b64(j.X, "x", 32)
	if err != nil {
		return pubKey{}, err
	}
	y, err := b64(j.Y, "y", 32)
	if err != nil {
		return pubKey{}, err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), slices.Concat([]byte{4}, x, y))
	if err != nil {
		return pubKey{}, fmt.Errorf("not a P-256 point: %w", err)
	}
	return acceptKey(pub)
}

func (j *jwk) okp() (pubKey, error) {
	if j.Crv != "Ed25519" {
		return pubKey{}, fmt.Errorf("OKP curve %q is not supported; use Ed25519 (EdDSA)", edge.Clip(j.Crv))
	}
	x, err := b64(j.X, "x", ed25519.PublicKeySize)
	if err != nil {
		return pubKey{}, err
	}
	return acceptKey(ed25519.PublicKey(x))
}

// b64 decodes the base64url member name, which must be size bytes long
// unless size is 0 (then non-empty).
func b64(s, name string, size int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%q is not base64url", name)
	case len(b) == 0:
		return nil, fmt.Errorf("%q is missing", name)
	case size > 0 && len(b) != size:
		return nil, fmt.Errorf("%q is %d bytes, want %d", name, len(b), size)
	}
	return b, nil
}

// keyIDs lists the key ids of keys, for logs.
func keyIDs(keys []pubKey) string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = edge.Clip(k.kid)
	}
	return strings.Join(ids, ",")
}

// checkJWKSURL reports what is wrong with a --jwks-url.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("auth: --jwks-url %q: want an absolute http(s) URL, e.g. https://issuer.example/.well-known/jwks.json", edge.Clip(raw))
	}
	return nil
}

// redact returns raw with the password of its userinfo, if any, masked.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return edge.Clip(raw)
	}
	return u.Redacted()
}
