package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// PEM files may hold RSA (PKIX and PKCS #1), EC and Ed25519 public keys
// and certificates, several to a file; each key verifies its algorithm.
func TestPEMFiles(t *testing.T) {
	k := testKeys()
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	now := time.Now()
	rs := sign(t, jwt.SigningMethodRS256, k.rsa, "", claimsFor(now))
	es := sign(t, jwt.SigningMethodES256, k.ec, "", claimsFor(now))
	ed := sign(t, jwt.SigningMethodEdDSA, k.ed, "", claimsFor(now))
	for _, tc := range []struct {
		name   string
		files  [][]byte
		accept []string
	}{
		{"RSA PKIX", [][]byte{pemOf(t, k.rsa.Public())}, []string{rs}},
		{"RSA PKCS1", [][]byte{pkcs1}, []string{rs}},
		{"EC", [][]byte{pemOf(t, k.ec.Public())}, []string{es}},
		{"Ed25519", [][]byte{pemOf(t, k.ed.Public())}, []string{ed}},
		{"RSA certificate", [][]byte{certOf(t, k.rsa)}, []string{rs}},
		{"EC certificate", [][]byte{certOf(t, k.ec)}, []string{es}},
		{"Ed25519 certificate", [][]byte{certOf(t, k.ed)}, []string{ed}},
		{"several keys in one file, with comments",
			[][]byte{[]byte("# issuer keys\n"), pemOf(t, k.rsa2.Public()), pemOf(t, k.rsa.Public()), []byte("\n"), pemOf(t, k.ec.Public()), certOf(t, k.ed)},
			[]string{rs, es, ed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, Config{PublicKeyFiles: []string{writeFile(t, "keys.pem", tc.files...)}})
			for _, tok := range tc.accept {
				if _, err := v.Verify(context.Background(), tok); err != nil {
					t.Errorf("refused: %v", err)
				}
			}
		})
	}

	// Keys of several files add up.
	v := newVerifier(t, Config{PublicKeyFiles: []string{
		writeFile(t, "rsa.pem", pemOf(t, k.rsa.Public())), writeFile(t, "ec.pem", pemOf(t, k.ec.Public())),
	}})
	for _, tok := range []string{rs, es} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("refused: %v", err)
		}
	}
}

// New refuses bad files and bad settings, naming the flag, the file and
// the fix, and reports every problem at once.
func TestNewErrors(t *testing.T) {
	k := testKeys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(k.ec)
	private := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	good := pemOf(t, k.rsa.Public())
	for _, tc := range []struct {
		name string
		cfg  func(t *testing.T) Config
		want []string
	}{
		{"missing file", func(t *testing.T) Config {
			return Config{PublicKeyFiles: []string{filepath.Join(t.TempDir(), "nope.pem")}}
		}, []string{"--jwt-public-key", "nope.pem", "cannot read it", "no such file"}},
		{"empty file", func(t *testing.T) Config {
			return Config{PublicKeyFiles: []string{writeFile(t, "empty.pem")}}
		}, []string{"--jwt-public-key", "empty.pem", `no PEM block in it; give a PEM file of "PUBLIC KEY" or "CERTIFICATE" blocks`}},
		{"not PEM", func(t *testing.T) Config {
			return Config{PublicKeyFiles: []string{writeFile(t, "key.der", []byte{0x30, 0x82, 1, 2, 3})}}
		}, []string{"key.der", "no PEM block"}},
		{"private key", func(t *testing.T) Config {
			return Config{PublicKeyFiles: []string{writeFile(t, "priv.pem", private)}}
		}, []string{"priv.pem", "PEM block 1 (PRIVATE KEY)", "give its public key (openssl pkey -in KEY -pubout)"}},
		{"RSA 1024", func(t *testing.T) Config {
			return Config{PublicKeyFiles: []string{writeFile(t, "small.pem", good, pemOf(t, small.Public()))}}
		}, []string{"small.pem", "PEM block 2", "RSA key of 1024 bits is too short; use 2048 bits or more"}},
		{"EC P-384", func(t *testing.T) Config {
			return Config{PublicKeyFiles: []string{writeFile(t, "p384.pem", pemOf(t, p384.Public()))}}
		}, []string{"p384.pem", "ECDSA key on curve P-384 is not supported; use P-256 (ES256)"}},
		{"P-384 certificate", func(t *testing.T) Config {
			return Config{PublicKeyFiles: []string{writeFile(t, "cert.pem", certOf(t, p384))}}
		}, []string{"cert.pem", "(CERTIFICATE)", "P-384 is not supported"}},
		{"corrupt block", func(t *testing.T) Config {
			return Config{PublicKeyFiles: []string{writeFile(t, "bad.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}))}}
		}, []string{"bad.pem", "PEM block 1 (PUBLIC KEY): cannot parse it"}},
		{"other block", func(t *testing.T) Config {
			return Config{PublicKeyFiles: []string{writeFile(t, "csr.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte("x")}))}}
		}, []string{"csr.pem", `unexpected PEM block; want "PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE"`}},
		{"truncated", func(t *testing.T) Config {
			second := pemOf(t, k.ec.Public())
			return Config{PublicKeyFiles: []string{writeFile(t, "cut.pem", good, second[:len(second)-30])}}
		}, []string{"cut.pem", "text after PEM block 1 is not a whole PEM block (truncated?)"}},
		{"bad JWKS URL", func(t *testing.T) Config { return Config{JWKSURL: "jwks.json"} },
			[]string{`--jwks-url "jwks.json": want an absolute http(s) URL`}},
		{"negative durations", func(t *testing.T) Config {
			return Config{Secret: []byte(testSecret), Leeway: -time.Second, JWKSRefresh: -time.Second}
		}, []string{"Leeway -1s is negative", "JWKSRefresh -1s is negative"}},
		{"every problem at once", func(t *testing.T) Config {
			return Config{PublicKeyFiles: []string{writeFile(t, "one.pem"), writeFile(t, "two.pem", private)}, JWKSURL: "ftp://x"}
		}, []string{"one.pem", "two.pem", "--jwks-url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := New(tc.cfg(t))
			if err == nil {
				t.Fatalf("New succeeded: %+v", v)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// A short secret works, with a warning.
func TestShortSecret(t *testing.T) {
	var log syncBuffer
	newVerifier(t, Config{Secret: []byte("short"), Log: slogTo(&log)})
	if !strings.Contains(log.String(), "--jwt-secret is short") {
		t.Fatalf("no warning in %q", log.String())
	}
}
