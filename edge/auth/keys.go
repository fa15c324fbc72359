package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/edgeworks/edge/edge"
)

// Bounds on RSA keys: shorter ones are breakable, longer ones make every
// verification slow.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// pubKey is one public key and the one algorithm it verifies.
type pubKey struct {
	kid string           // key id from the JWKS; "" for PEM keys
	alg string           // algRS256, algES256 or algEdDSA
	key crypto.PublicKey // *rsa.PublicKey, *ecdsa.PublicKey on P-256, or ed25519.PublicKey
}

// The algorithms a token may use.
const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
	algEdDSA = "EdDSA"
)

// acceptKey returns pub as a pubKey if it is a kind and size of key that
// the edge accepts, else an error that says what to use instead.
func acceptKey(pub crypto.PublicKey) (pubKey, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch bits := k.N.BitLen(); {
		case bits < minRSABits:
			return pubKey{}, fmt.Errorf("RSA key of %d bits is too short; use %d bits or more", bits, minRSABits)
		case bits > maxRSABits:
			return pubKey{}, fmt.Errorf("RSA key of %d bits is too long; use at most %d bits", bits, maxRSABits)
		}
		return pubKey{alg: algRS256, key: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return pubKey{}, fmt.Errorf("ECDSA key on curve %s is not supported; use P-256 (ES256)", k.Curve.Params().Name)
		}
		return pubKey{alg: algES256, key: k}, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return pubKey{}, fmt.Errorf("Ed25519 key of %d bytes; want %d", len(k), ed25519.PublicKeySize)
		}
		return pubKey{alg: algEdDSA, key: k}, nil
	case *ecdh.PublicKey:
		return pubKey{}, errors.New("X25519/ECDH keys cannot verify signatures; use RSA (RS256), ECDSA P-256 (ES256) or Ed25519 (EdDSA)")
	}
	return pubKey{}, fmt.Errorf("%T keys are not supported; use RSA (RS256), ECDSA P-256 (ES256) or Ed25519 (EdDSA)", pub)
}

// loadPEMFile returns the public keys in a PEM file: PUBLIC KEY, RSA
// PUBLIC KEY and CERTIFICATE blocks, as many as it holds. The error names
// the flag, the file and the fix.
func loadPEMFile(path string) ([]pubKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("auth: --jwt-public-key %s: cannot read it: %w", path, err)
	}
	var keys []pubKey
	rest := data
	for n := 1; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		k, err := keyFromBlock(b)
		if err != nil {
			return nil, fmt.Errorf("auth: --jwt-public-key %s: PEM block %d (%s): %w", path, n, edge.Clip(b.Type), err)
		}
		keys = append(keys, k)
	}
	switch {
	case len(keys) == 0:
		return nil, fmt.Errorf(`auth: --jwt-public-key %s: no PEM block in it; give a PEM file of "PUBLIC KEY" or "CERTIFICATE" blocks`, path)
	case len(bytes.TrimSpace(rest)) > 0:
		return nil, fmt.Errorf("auth: --jwt-public-key %s: text after PEM block %d is not a whole PEM block (truncated?)", path, len(keys))
	}
	return keys, nil
}

// keyFromBlock returns the public key of one PEM block.
func keyFromBlock(b *pem.Block) (pubKey, error) {
	var (
		pub crypto.PublicKey
		err error
	)
	switch b.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
			pub = cert.PublicKey
		}
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return pubKey{}, errors.New("a private key does not belong on the edge; give its public key (openssl pkey -in KEY -pubout)")
	default:
		return pubKey{}, errors.New(`unexpected PEM block; want "PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE"`)
	}
	if err != nil {
		return pubKey{}, fmt.Errorf("cannot parse it: %w", err)
	}
	return acceptKey(pub)
}
