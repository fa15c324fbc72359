package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edgeworks/edge/edge"
)

// Defaults of Config.
const (
	// DefaultJWKSRefresh is how often Run refetches the JWKS.
	DefaultJWKSRefresh = 5 * time.Minute
	// DefaultJWKSTimeout bounds each JWKS fetch.
	DefaultJWKSTimeout = 10 * time.Second
	// DefaultLeeway is the clock skew tolerated on exp and nbf.
	DefaultLeeway = 30 * time.Second
)

// minSecretLen is the shortest HS256 secret New takes without a warning
// (RFC 7518: at least as long as the hash, 256 bits).
const minSecretLen = 32

// Config says where a Verifier gets its keys. The zero Config is valid and
// gives a Verifier that is not Enabled.
type Config struct {
	// Secret is the HS256 key (--jwt-secret). Nil or empty: HS256 tokens
	// are refused.
	Secret []byte
	// PublicKeyFiles are PEM files (--jwt-public-key) of RSA (RS256, 2048
	// bits or more), ECDSA P-256 (ES256) or Ed25519 (EdDSA) public keys or
	// certificates; a file may hold several. Their keys have no kid: a
	// token is tried against every one of its algorithm.
	PublicKeyFiles []string
	// JWKSURL is where a JWK set is fetched (--jwks-url), at New, every
	// JWKSRefresh while Run runs, and when a token names an unknown kid
	// (at most once per 10s). Empty: none.
	JWKSURL string
	// JWKSRefresh is how often Run refetches the JWKS. Zero: 5m.
	JWKSRefresh time.Duration
	// HTTPClient fetches the JWKS. Nil: a client with a 10s timeout. Each
	// fetch has a 10s deadline either way.
	HTTPClient *http.Client
	// Leeway is the clock skew tolerated on exp and nbf. Zero: 30s.
	Leeway time.Duration
	// Audiences (--jwt-audience), when any is set, make "aud" required: a
	// token must name at least one of them, so that a token the issuer
	// minted for another service is refused here. Empty: aud is not read.
	Audiences []string
	// Issuer (--jwt-issuer), when set, makes "iss" required and equal to
	// it. Empty: iss is not read.
	Issuer string
	// Log receives warnings (a JWKS that cannot be fetched, a short
	// secret) and JWKS changes. Nil: discard.
	Log *slog.Logger
}

// Verifier checks tokens against the configured keys. Make one with New;
// it is safe for concurrent use. Run keeps its JWKS fresh; without Run the
// JWKS is fetched at New and when a token names an unknown key.
type Verifier struct {
	secret []byte
	static []pubKey         // from PEM files; fixed after New
	jwks   *jwksSource      // nil without a JWKS URL
	parser *jwt.Parser      // checks exp and nbf against now, with the leeway
	now    func() time.Time // time.Now; tests set it before using the Verifier

	refresh   time.Duration
	leeway    time.Duration
	audiences bool // aud is required
}

// New returns a Verifier for cfg. Its error lists every problem with cfg,
// each naming the flag and the fix: an unreadable or invalid PEM file, an
// unsupported key (an RSA key under 2048 bits, ECDSA not on P-256, a
// private key), a bad JWKS URL.
//
// With a JWKS URL, New fetches it (waiting at most 10s). If that fails,
// New still succeeds and logs a warning: the edge starts, and tokens that
// need the JWKS fail with ErrKeysUnavailable until a fetch works.
func New(cfg Config) (*Verifier, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{now: time.Now, refresh: cfg.JWKSRefresh, leeway: cfg.Leeway}
	if v.refresh == 0 {
		v.refresh = DefaultJWKSRefresh
	}
	if v.leeway == 0 {
		v.leeway = DefaultLeeway
	}
	var errs []error
	if v.refresh < 0 {
		errs = append(errs, fmt.Errorf("auth: JWKSRefresh %v is negative; use a positive duration, or zero for %v", v.refresh, DefaultJWKSRefresh))
	}
	if v.leeway < 0 {
		errs = append(errs, fmt.Errorf("auth: Leeway %v is negative; use a positive duration, or zero for %v", v.leeway, DefaultLeeway))
	}
	if len(cfg.Secret) > 0 {
		v.secret = append([]byte(nil), cfg.Secret...)
		if len(v.secret) < minSecretLen {
			log.Warn("auth: --jwt-secret is short; HS256 wants a random secret of at least 32 bytes", "bytes", len(v.secret))
		}
	}
	for _, f := range cfg.PublicKeyFiles {
		keys, err := loadPEMFile(f)
		if err != nil {
			errs = append(errs, err)
		}
		v.static = append(v.static, keys...)
	}
	if cfg.JWKSURL != "" {
		if err := checkJWKSURL(cfg.JWKSURL); err != nil {
			errs = append(errs, err)
		}
	}
	for _, a := range cfg.Audiences {
		if a == "" {
			errs = append(errs, errors.New("auth: an empty --jwt-audience; name the audience your issuer puts in aud, or set none"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{algHS256, algRS256, algES256, algEdDSA}),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
		jwt.WithStrictDecoding(),
	}
	if len(cfg.Audiences) > 0 {
		v.audiences = true
		opts = append(opts, jwt.WithAudience(cfg.Audiences...))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	if cfg.JWKSURL != "" {
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: DefaultJWKSTimeout}
		}
		v.jwks = &jwksSource{url: cfg.JWKSURL, client: client, now: func() time.Time { return v.now() },
			log: log.With("jwks_url", redact(cfg.JWKSURL))}
		v.jwks.refresh(context.Background(), false)
	}
	return v, nil
}

// Enabled reports whether any key is configured: a secret, a PEM key or a
// JWKS URL.
func (v *Verifier) Enabled() bool {
	return len(v.secret) > 0 || len(v.static) > 0 || v.jwks != nil
}

// Run refetches the JWKS every JWKSRefresh until ctx is done, keeping the
// last good key set when a fetch fails. Without a JWKS URL it returns at
// once. It starts no goroutines, so when it returns, nothing of it runs.
func (v *Verifier) Run(ctx context.Context) {
	if v.jwks == nil {
		return
	}
	t := time.NewTicker(v.refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v.jwks.refresh(ctx, false)
		}
	}
}

// Verify checks token (at most MaxTokenLen bytes) and returns its claims.
// The signature must verify with a configured key of the kind its alg
// names (see the package doc); exp and nbf, when present, must hold within
// the leeway. A token without exp is accepted and never expires.
//
// A token with a kid picks the JWKS key of that id; a kid the JWKS does not
// know makes Verify refetch the JWKS (at most once per 10s; Verify waits
// for the fetch, at most 10s or until ctx ends) before it falls back to the
// PEM keys. A token without kid is
// tried against every key of its algorithm.
//
// With Audiences or an Issuer configured, aud must name one of the
// audiences and iss must equal the issuer.
//
// A token whose header has "crit" is refused whatever it lists: RFC 7515
// requires a verifier to refuse critical extensions it does not
// understand, and the edge understands none.
//
// The error wraps ErrExpired, ErrNotYetValid, ErrInvalid or
// ErrKeysUnavailable, and never contains the token.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	switch {
	case !v.Enabled():
		return nil, fmt.Errorf("%w: no token key is configured on this edge", ErrInvalid)
	case token == "":
		return nil, fmt.Errorf("%w: empty token", ErrInvalid)
	case len(token) > MaxTokenLen:
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxTokenLen)
	}
	var tc tokenClaims
	var keyErr error // keyFunc's own error, which says it best
	tok, err := v.parser.ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			// RFC 7515 §4.1.11: extensions named critical must be
			// understood, and this edge understands none. Checked
			// before any key is looked up, so such a token cannot
			// make the edge refetch the JWKS.
			keyErr = errCritical
			return nil, keyErr
		}
		k, err := v.keyFor(ctx, t)
		keyErr = err
		return k, err
	})
	if err != nil {
		if keyErr != nil {
			return nil, keyErr
		}
		return nil, v.explain(tok, &tc, strings.Count(token, ".")+1, err)
	}
	return tc.claims()
}

// keyFor returns the key, or the set of keys, that may have signed t.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if alg == algHS256 {
		if len(v.secret) == 0 {
			return nil, fmt.Errorf("%w: HS256 tokens are not accepted here (no shared secret is configured)", ErrInvalid)
		}
		return v.secret, nil
	}
	kid, ok := t.Header["kid"].(string)
	if !ok && t.Header["kid"] != nil {
		return nil, fmt.Errorf(`%w: "kid" in the header is not a string`, ErrInvalid)
	}

	var keys jwt.VerificationKeySet
	add := func(ks []pubKey) {
		for _, k := range ks {
			if k.alg == alg {
				keys.Keys = append(keys.Keys, k.key)
			}
		}
	}
	unavailable := false
	if v.jwks != nil {
		ks, loaded := v.jwks.snapshot()
		if !loaded || (kid != "" && !hasKid(ks, kid)) {
			v.jwks.refresh(ctx, true)
			ks, loaded = v.jwks.snapshot()
		}
		unavailable = !loaded
		if kid != "" && hasKid(ks, kid) {
			// The key named by kid, and only if it fits the algorithm.
			named := byKid(ks, kid)
			if add(named); len(keys.Keys) == 0 {
				return nil, fmt.Errorf("%w: key %q verifies %s tokens, not %s", ErrInvalid, edge.Clip(kid), named[0].alg, alg)
			}
			return keys, nil
		}
		if kid == "" {
			add(ks)
		}
	}
	add(v.static)
	switch {
	case len(keys.Keys) > 0:
		return keys, nil
	case unavailable:
		return nil, ErrKeysUnavailable
	case kid != "" && v.jwks != nil:
		return nil, fmt.Errorf("%w: no key with kid %q (not in the JWKS, even refetched)", ErrInvalid, edge.Clip(kid))
	}
	return nil, fmt.Errorf("%w: %s tokens are not accepted here (no %s key is configured)", ErrInvalid, alg, keyKind[alg])
}

// keyKind names the kind of key each algorithm needs, for errors.
var keyKind = map[string]string{algRS256: "RSA", algES256: "ECDSA P-256", algEdDSA: "Ed25519"}

func hasKid(ks []pubKey, kid string) bool {
	for _, k := range ks {
		if k.kid == kid {
			return true
		}
	}
	return false
}

func byKid(ks []pubKey, kid string) []pubKey {
	var out []pubKey
	for _, k := range ks {
		if k.kid == kid {
			out = append(out, k)
		}
	}
	return out
}

// explain turns an error of the jwt parser into one of ours, saying what
// is wrong without quoting the token, of which segments is the number of
// dot-separated segments.
func (v *Verifier) explain(tok *jwt.Token, tc *tokenClaims, segments int, err error) error {
	var (
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
		b64Err    base64.CorruptInputError
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired) && tc.ExpiresAt != nil:
		return fmt.Errorf("%w at %s; get a new token", ErrExpired, tc.ExpiresAt.UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenNotValidYet) && tc.NotBefore != nil:
		return fmt.Errorf("%w: not before %s", ErrNotYetValid, tc.NotBefore.UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && v.audiences && tc.Audience == nil:
		return fmt.Errorf("%w: the token has no aud claim, and this edge requires one", ErrInvalid)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Errorf("%w: the aud claim names none of this edge's audiences", ErrInvalid)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Errorf("%w: the token has no iss claim, and this edge requires one", ErrInvalid)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fmt.Errorf("%w: the iss claim is not this edge's issuer", ErrInvalid)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Errorf("%w: claim %q has the wrong type", ErrInvalid, edge.Clip(strings.TrimPrefix(typeErr.Field, "RegisteredClaims.")))
	case errors.As(err, &b64Err):
		return fmt.Errorf("%w: a segment is not base64url", ErrInvalid)
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("%w: the header or the claims are not JSON", ErrInvalid)
	case errors.Is(err, jwt.ErrTokenMalformed) && segments != 3:
		return fmt.Errorf("%w: malformed; a token is three base64url segments (header, claims, signature) separated by dots", ErrInvalid)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: a claim has the wrong type; exp, nbf and iat are numbers, sub and iss strings, aud a string or an array of strings, channels and publish arrays of strings", ErrInvalid)
	}
	var alg string
	if tok != nil {
		alg, _ = tok.Header["alg"].(string)
	}
	switch alg {
	case "":
		return fmt.Errorf(`%w: the header names no "alg"`, ErrInvalid)
	case "none":
		return fmt.Errorf("%w: unsigned tokens (alg none) are refused", ErrInvalid)
	case algHS256, algRS256, algES256, algEdDSA:
	default:
		return fmt.Errorf("%w: algorithm %q is not accepted; use HS256, RS256, ES256 or EdDSA", ErrInvalid, edge.Clip(alg))
	}
	if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		return fmt.Errorf("%w: the %s signature does not verify", ErrInvalid, alg)
	}
	return fmt.Errorf("%w: its claims are not valid", ErrInvalid)
}
