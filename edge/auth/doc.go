// Package auth decides who may subscribe and publish: it verifies JSON Web
// Tokens, matches channel patterns, and finds a client's token in an HTTP
// request.
//
// # Tokens
//
// A token is a JWT signed with one of four algorithms, each only with its
// own kind of key, so that no token can pick a key of another kind
// ("algorithm confusion"):
//
//	HS256  the shared secret (--jwt-secret)
//	RS256  an RSA public key of 2048 bits or more
//	ES256  an ECDSA public key on P-256
//	EdDSA  an Ed25519 public key
//
// Public keys come from PEM files (--jwt-public-key) and from a JWKS URL
// (--jwks-url). Unsigned tokens (alg "none") and every other algorithm are
// refused, and so is a token whose header has "crit": RFC 7515 requires a
// verifier to refuse critical extensions it does not understand, and the
// edge understands none.
//
// The claims the edge reads:
//
//	sub       the subject, who the client is (for rate limits and logs)
//	exp, nbf  expiry and not-before, checked with a leeway for clock skew;
//	          a token without exp never expires, so issue one without exp
//	          only where that is meant
//	channels  an array of channel patterns the token may subscribe to
//	publish   an array of channel patterns the token may publish to
//	aud       with --jwt-audience: must name one of the edge's audiences
//	iss       with --jwt-issuer: must equal the edge's issuer
//
// A token whose channels or publish claim holds an invalid pattern is
// refused as a whole, so a mistake in the issuer shows at once.
//
// # Patterns
//
// A pattern is a channel name in which '*' stands for any run of
// characters, possibly empty: "user:42:*" matches "user:42:inbox" and
// "user:42:a:b", "*" matches every channel. There are no other
// metacharacters. Matching takes at most O(len(pattern)·len(channel))
// steps, whatever the input.
//
// # Where a token comes from
//
// TokenFromRequest looks in the Authorization: Bearer header, then the
// access_token query parameter (EventSource cannot set headers), then the
// edge_token cookie: for subscribing. BearerToken looks in the header
// only, and refuses an Authorization header of another scheme: for
// publishing, where a cookie would let another site's form act as its
// visitor.
//
// # Errors
//
// Verify's errors wrap ErrExpired, ErrNotYetValid or ErrInvalid, which wrap
// edge.ErrUnauthorized (401), or ErrKeysUnavailable, which wraps
// edge.ErrUnavailable (503) while the JWKS cannot be fetched. No error
// message contains the token.
package auth
