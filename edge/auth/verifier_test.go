package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// alg is one algorithm with its configuration and keys.
type alg struct {
	name           string
	method         jwt.SigningMethod
	signKey, other any // the configured key's private half, and a key that is not configured
	cfg            func(t *testing.T) Config
}

func algs() []alg {
	k := testKeys()
	return []alg{
		{"HS256", jwt.SigningMethodHS256, []byte(testSecret), []byte("another-secret-of-32-bytes-or-more!"),
			func(t *testing.T) Config { return Config{Secret: []byte(testSecret)} }},
		{"RS256", jwt.SigningMethodRS256, k.rsa, k.rsa2,
			func(t *testing.T) Config {
				return Config{PublicKeyFiles: []string{writeFile(t, "rsa.pem", pemOf(t, k.rsa.Public()))}}
			}},
		{"ES256", jwt.SigningMethodES256, k.ec, k.ec2,
			func(t *testing.T) Config {
				return Config{PublicKeyFiles: []string{writeFile(t, "ec.pem", pemOf(t, k.ec.Public()))}}
			}},
		{"EdDSA", jwt.SigningMethodEdDSA, k.ed, k.ed2,
			func(t *testing.T) Config {
				return Config{PublicKeyFiles: []string{writeFile(t, "ed.pem", pemOf(t, k.ed.Public()))}}
			}},
	}
}

// Each algorithm accepts good tokens with their claims, and refuses
// expired, not yet valid, wrongly signed, unsigned and tampered ones with
// the right kind of error.
func TestVerifyAlgorithms(t *testing.T) {
	ctx := context.Background()
	for _, a := range algs() {
		t.Run(a.name, func(t *testing.T) {
			v := newVerifier(t, a.cfg(t))
			if !v.Enabled() {
				t.Fatal("not Enabled with a key")
			}
			now := time.Now()
			with := func(edit func(jwt.MapClaims)) jwt.MapClaims {
				c := claimsFor(now)
				edit(c)
				return c
			}
			good := sign(t, a.method, a.signKey, "", claimsFor(now))
			tampered := strings.Split(good, ".")
			tampered[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"42","channels":["*"]}`))

			c, err := v.Verify(ctx, good)
			if err != nil {
				t.Fatalf("good token: %v", err)
			}
			if c.Subject != "42" || !slices.Equal(c.Channels, []string{"user:42:*", "public:*"}) ||
				!slices.Equal(c.Publish, []string{"user:42:out"}) || c.Expiry.Unix() != now.Add(time.Hour).Unix() || !c.NotBefore.IsZero() {
				t.Fatalf("claims %+v", c)
			}

			for _, tc := range []struct {
				name  string
				token string
				kind  error // nil: accepted
			}{
				{"expired within leeway", sign(t, a.method, a.signKey, "", with(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() })), nil},
				{"expired", sign(t, a.method, a.signKey, "", with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), ErrExpired},
				{"not yet valid within leeway", sign(t, a.method, a.signKey, "", with(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Second).Unix() })), nil},
				{"not yet valid", sign(t, a.method, a.signKey, "", with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), ErrNotYetValid},
				{"no exp", sign(t, a.method, a.signKey, "", with(func(c jwt.MapClaims) { delete(c, "exp") })), nil},
				{"other key", sign(t, a.method, a.other, "", claimsFor(now)), ErrInvalid},
				{"alg none", unsigned(t, claimsFor(now)), ErrInvalid},
				{"tampered claims", strings.Join(tampered, "."), ErrInvalid},
				{"signature cut", good[:strings.LastIndexByte(good, '.')+1], ErrInvalid},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c, err := v.Verify(ctx, tc.token)
					if tc.kind == nil {
						if err != nil {
							t.Fatalf("refused: %v", err)
						}
						if tc.name == "no exp" && !c.Expiry.IsZero() {
							t.Fatalf("Expiry %v without exp", c.Expiry)
						}
						return
					}
					if c != nil {
						t.Fatalf("claims %+v with an error", c)
					}
					checkRefused(t, err, tc.kind, tc.token)
				})
			}
		})
	}
}

// Expired and not-yet-valid errors say when; invalid ones say why.
func TestVerifyMessages(t *testing.T) {
	v := newVerifier(t, Config{Secret: []byte(testSecret)})
	exp := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name, token, want string
	}{
		{"expired", sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{"exp": exp.Unix()}),
			"token expired at 2020-01-02T03:04:05Z"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{"nbf": time.Now().Add(time.Hour).Unix()}),
			"token not valid yet: not before"},
		{"none", unsigned(t, jwt.MapClaims{}), "unsigned tokens (alg none) are refused"},
		{"HS512", sign(t, jwt.SigningMethodHS512, []byte(testSecret), "", jwt.MapClaims{}), `algorithm "HS512" is not accepted`},
		{"bad signature", sign(t, jwt.SigningMethodHS256, []byte("x"), "", jwt.MapClaims{}), "the HS256 signature does not verify"},
		{"RS256 without RSA key", sign(t, jwt.SigningMethodRS256, testKeys().rsa, "", jwt.MapClaims{}), "RS256 tokens are not accepted here (no RSA key is configured)"},
		{"garbage", "not.a.token", "a segment is not base64url"},
		{"one segment", "abc", "malformed; a token is three base64url segments"},
		{"claims not JSON", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln", "the header or the claims are not JSON"},
		{"exp a string", sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{"exp": "tomorrow"}), "a claim has the wrong type; exp, nbf and iat are numbers"},
		{"aud a number", sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{"aud": 7}), "aud a string or an array of strings"},
		{"no alg", "e30.e30.c2ln", `the header names no "alg"`},
		{"padded signature", "eyJhbGciOiJIUzI1NiJ9.e30.c2ln==", "a segment is not base64url"},
		{"channels a string", sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{"channels": "user:1"}), `claim "channels" has the wrong type`},
		{"sub a number", sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{"sub": 42}), `claim "sub" has the wrong type`},
		{"bad pattern", sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{"channels": []string{"user 1"}}), `the channels claim: pattern "user 1" has byte ' '`},
		{"empty publish pattern", sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{"publish": []string{""}}), "the publish claim: empty pattern"},
		{"empty", "", "empty token"},
		{"too long", strings.Repeat("a", MaxTokenLen+1), "longer than 8192 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tc.token)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// A token may not pick a key of another kind than its alg names: HS256
// "signed" with a public key's bytes, or an asymmetric alg against the
// secret or a key of the wrong type, is refused.
func TestAlgorithmConfusion(t *testing.T) {
	k := testKeys()
	rsaPEM, ecPEM, edPEM := pemOf(t, k.rsa.Public()), pemOf(t, k.ec.Public()), pemOf(t, k.ed.Public())
	rsaDER, _ := x509.MarshalPKIXPublicKey(k.rsa.Public())
	files := func(pems ...[]byte) []string {
		var fs []string
		for _, p := range pems {
			fs = append(fs, writeFile(t, "key.pem", p))
		}
		return fs
	}
	now := time.Now()
	for _, tc := range []struct {
		name  string
		cfg   Config
		token string
	}{
		{"HS256 with the RSA PEM as secret", Config{PublicKeyFiles: files(rsaPEM)},
			sign(t, jwt.SigningMethodHS256, rsaPEM, "", claimsFor(now))},
		{"HS256 with the RSA DER as secret", Config{PublicKeyFiles: files(rsaPEM)},
			sign(t, jwt.SigningMethodHS256, rsaDER, "", claimsFor(now))},
		{"HS256 with the EC PEM as secret", Config{PublicKeyFiles: files(ecPEM)},
			sign(t, jwt.SigningMethodHS256, ecPEM, "", claimsFor(now))},
		{"HS256 with the Ed25519 key bytes as secret", Config{PublicKeyFiles: files(edPEM)},
			sign(t, jwt.SigningMethodHS256, []byte(k.ed.Public().(ed25519.PublicKey)), "", claimsFor(now))},
		{"HS256 with the RSA PEM as secret, secret configured too", Config{Secret: []byte(testSecret), PublicKeyFiles: files(rsaPEM)},
			sign(t, jwt.SigningMethodHS256, rsaPEM, "", claimsFor(now))},
		{"RS256 with only a secret", Config{Secret: []byte(testSecret)},
			sign(t, jwt.SigningMethodRS256, k.rsa, "", claimsFor(now))},
		{"ES256 with only a secret", Config{Secret: []byte(testSecret)},
			sign(t, jwt.SigningMethodES256, k.ec, "", claimsFor(now))},
		{"ES256 with only an RSA key", Config{PublicKeyFiles: files(rsaPEM)},
			sign(t, jwt.SigningMethodES256, k.ec, "", claimsFor(now))},
		{"EdDSA with only an EC key", Config{PublicKeyFiles: files(ecPEM)},
			sign(t, jwt.SigningMethodEdDSA, k.ed, "", claimsFor(now))},
		{"RS256 with only an Ed25519 key", Config{PublicKeyFiles: files(edPEM)},
			sign(t, jwt.SigningMethodRS256, k.rsa, "", claimsFor(now))},
		{"PS256 with the RSA key", Config{PublicKeyFiles: files(rsaPEM)},
			sign(t, jwt.SigningMethodPS256, k.rsa, "", claimsFor(now))},
		{"RS512 with the RSA key", Config{PublicKeyFiles: files(rsaPEM)},
			sign(t, jwt.SigningMethodRS512, k.rsa, "", claimsFor(now))},
		{"HS512 with the secret", Config{Secret: []byte(testSecret)},
			sign(t, jwt.SigningMethodHS512, []byte(testSecret), "", claimsFor(now))},
		{"alg none with every kind of key", Config{Secret: []byte(testSecret), PublicKeyFiles: files(rsaPEM, ecPEM, edPEM)},
			unsigned(t, claimsFor(now))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, tc.cfg)
			_, err := v.Verify(context.Background(), tc.token)
			checkRefused(t, err, ErrInvalid, tc.token)
		})
	}
}

// A longer Leeway tolerates more skew.
func TestLeeway(t *testing.T) {
	v := newVerifier(t, Config{Secret: []byte(testSecret), Leeway: 2 * time.Minute})
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()})
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("refused within a 2m leeway: %v", err)
	}
}

// With audiences and an issuer configured, a token must name one of the
// audiences in aud and the issuer in iss; without them neither is read.
func TestAudienceAndIssuer(t *testing.T) {
	strict := newVerifier(t, Config{Secret: []byte(testSecret), Audiences: []string{"edge", "edge-next"}, Issuer: "https://auth.example"})
	lax := newVerifier(t, Config{Secret: []byte(testSecret)})
	with := func(kv ...any) string {
		c := claimsFor(time.Now())
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", c)
	}
	for _, tc := range []struct {
		name, token string
		want        string // "" when strict accepts it
	}{
		{"one audience", with("aud", "edge", "iss", "https://auth.example"), ""},
		{"the second audience", with("aud", "edge-next", "iss", "https://auth.example"), ""},
		{"an audience among others", with("aud", []string{"billing", "edge"}, "iss", "https://auth.example"), ""},
		{"another service's token", with("aud", "billing", "iss", "https://auth.example"), "the aud claim names none of this edge's audiences"},
		{"no aud", with("iss", "https://auth.example"), "the token has no aud claim"},
		{"empty aud", with("aud", []string{}, "iss", "https://auth.example"), "the token has no aud claim"},
		{"another issuer", with("aud", "edge", "iss", "https://evil.example"), "the iss claim is not this edge's issuer"},
		{"no iss", with("aud", "edge"), "the token has no iss claim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := strict.Verify(context.Background(), tc.token)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			} else {
				checkRefused(t, err, ErrInvalid, tc.token)
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %q, want one saying %q", err, tc.want)
				}
			}
			if _, err := lax.Verify(context.Background(), tc.token); err != nil {
				t.Fatalf("refused without audiences or issuer configured: %v", err)
			}
		})
	}
	if _, err := New(Config{Secret: []byte(testSecret), Audiences: []string{""}}); err == nil || !strings.Contains(err.Error(), "--jwt-audience") {
		t.Fatalf("New with an empty audience: %v, want an error naming --jwt-audience", err)
	}
}

// A Verifier without keys is not Enabled and refuses every token.
func TestNotEnabled(t *testing.T) {
	v := newVerifier(t, Config{Secret: []byte{}})
	if v.Enabled() {
		t.Fatal("Enabled without keys")
	}
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claimsFor(time.Now()))
	_, err := v.Verify(context.Background(), tok)
	checkRefused(t, err, ErrInvalid, tok)
}

// Tokens are bounded before parsing, even well-signed ones.
func TestVerifyTokenSize(t *testing.T) {
	v := newVerifier(t, Config{Secret: []byte(testSecret)})
	c := claimsFor(time.Now())
	c["pad"] = strings.Repeat("x", MaxTokenLen)
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", c)
	_, err := v.Verify(context.Background(), tok)
	checkRefused(t, err, ErrInvalid, tok)
}

// Claims allow what their patterns match, and nothing else.
func TestClaims(t *testing.T) {
	v := newVerifier(t, Config{Secret: []byte(testSecret)})
	c, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claimsFor(time.Now())))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		channel  string
		sub, pub bool
	}{
		{"user:42:x", true, false},
		{"user:42:a:b", true, false},
		{"user:42:", true, false},
		{"user:42:out", true, true},
		{"user:43:x", false, false},
		{"user:42", false, false},
		{"user:420:x", false, false},
		{"public:news", true, false},
		{"private:news", false, false},
	} {
		if got := c.CanSubscribe(tc.channel); got != tc.sub {
			t.Errorf("CanSubscribe(%q) = %v, want %v", tc.channel, got, tc.sub)
		}
		if got := c.CanPublish(tc.channel); got != tc.pub {
			t.Errorf("CanPublish(%q) = %v, want %v", tc.channel, got, tc.pub)
		}
	}
	var none *Claims
	if none.CanSubscribe("public:news") || none.CanPublish("public:news") {
		t.Error("nil Claims may something")
	}
	if (&Claims{}).CanSubscribe("x") {
		t.Error("Claims without channels may subscribe")
	}
}

// FuzzVerify feeds hostile tokens: Verify never panics, and refuses them
// with an error of its own kinds that does not quote them.
func FuzzVerify(f *testing.F) {
	k := testKeys()
	now := time.Now()
	f.Add(sign(f, jwt.SigningMethodHS256, []byte(testSecret), "", claimsFor(now)))
	f.Add(sign(f, jwt.SigningMethodES256, k.ec, "kid", claimsFor(now)))
	f.Add(unsigned(f, claimsFor(now)))
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
	f.Add("a.b.c")
	v := newVerifier(f, Config{Secret: []byte(testSecret), PublicKeyFiles: []string{writeFile(f, "ec.pem", pemOf(f, k.ec.Public()))}})
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(context.Background(), token)
		if err == nil {
			if c == nil {
				t.Fatal("nil claims without error")
			}
			return
		}
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrNotYetValid) {
			t.Fatalf("error %v of no known kind", err)
		}
		if len(token) >= 16 && strings.Contains(token, ".") && strings.Contains(err.Error(), token) {
			t.Fatalf("error %q quotes the token", err)
		}
	})
}

// A token with a "crit" header is refused, whatever it lists and whichever
// key would verify it (RFC 7515 §4.1.11: a verifier must refuse critical
// extensions it does not understand, and the edge understands none). The
// same token without "crit" is accepted, so the header alone decides; a
// crit token with an unknown kid does not make the edge refetch the JWKS.
func TestVerifyRefusesCrit(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, 200, jwks(rsaJWK("r1", &k.rsa.PublicKey), ecJWK("e1", &k.ec.PublicKey), okpJWK("o1", k.ed.Public().(ed25519.PublicKey))))
	jwksV, _, _ := jwksVerifier(t, srv, Config{})
	type path struct {
		name   string
		v      *Verifier
		method jwt.SigningMethod
		key    any
		kid    string
	}
	var paths []path
	for _, a := range algs() {
		paths = append(paths, path{a.name + " configured key", newVerifier(t, a.cfg(t)), a.method, a.signKey, ""})
	}
	paths = append(paths,
		path{"RS256 JWKS key", jwksV, jwt.SigningMethodRS256, k.rsa, "r1"},
		path{"ES256 JWKS key", jwksV, jwt.SigningMethodES256, k.ec, "e1"},
		path{"EdDSA JWKS key", jwksV, jwt.SigningMethodEdDSA, k.ed, "o1"},
		path{"RS256 JWKS without kid", jwksV, jwt.SigningMethodRS256, k.rsa, ""},
		path{"RS256 JWKS with an unknown kid", jwksV, jwt.SigningMethodRS256, k.rsa, "nope"},
	)
	crits := []struct {
		name string
		crit any
	}{
		{"an extension", []string{"exp"}},
		{"b64 (RFC 7797)", []string{"b64"}},
		{"several", []string{"a", "b"}},
		{"empty list", []string{}},
		{"not a list", "exp"},
		{"null", nil},
	}
	now := time.Now()
	before := srv.requests()
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			if p.kid != "nope" {
				if _, err := p.v.Verify(context.Background(), sign(t, p.method, p.key, p.kid, claimsFor(now))); err != nil {
					t.Fatalf("the token without crit is refused: %v", err)
				}
			}
			for _, c := range crits {
				t.Run(c.name, func(t *testing.T) {
					tok := jwt.NewWithClaims(p.method, claimsFor(now))
					tok.Header["crit"] = c.crit
					if p.kid != "" {
						tok.Header["kid"] = p.kid
					}
					s, err := tok.SignedString(p.key)
					if err != nil {
						t.Fatal(err)
					}
					_, err = p.v.Verify(context.Background(), s)
					checkRefused(t, err, ErrInvalid, s)
					if !strings.Contains(err.Error(), `"crit"`) {
						t.Fatalf("error %q does not say that crit is the reason", err)
					}
				})
			}
		})
	}
	if n := srv.requests() - before; n != 0 {
		t.Errorf("%d JWKS fetches for crit tokens, want none", n)
	}
}
