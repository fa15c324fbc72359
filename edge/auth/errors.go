package auth

import (
	"fmt"

	"github.com/edgeworks/edge/edge"
)

// Errors of Verify. Each detailed error wraps one of them; match with
// errors.Is. The first three wrap edge.ErrUnauthorized, so the HTTP layer
// answers 401; ErrKeysUnavailable wraps edge.ErrUnavailable (503), since
// the client's token may well be good.
var (
	// ErrExpired: the token's exp is past, beyond the leeway.
	ErrExpired = fmt.Errorf("%w: token expired", edge.ErrUnauthorized)
	// ErrNotYetValid: the token's nbf is ahead, beyond the leeway.
	ErrNotYetValid = fmt.Errorf("%w: token not valid yet", edge.ErrUnauthorized)
	// ErrInvalid: the token is malformed, uses an algorithm or key that is
	// not accepted, has a bad signature or a bad claim.
	ErrInvalid = fmt.Errorf("%w: invalid token", edge.ErrUnauthorized)
	// ErrKeysUnavailable: the token needs keys from the JWKS URL, and none
	// has been fetched yet.
	ErrKeysUnavailable = fmt.Errorf("%w: token keys not loaded yet (the JWKS could not be fetched); try again later", edge.ErrUnavailable)
)

// errCritical refuses a token with a "crit" header (RFC 7515 §4.1.11).
var errCritical = fmt.Errorf(`%w: the header has "crit", naming extensions that must be understood, and this edge understands none; issue the token without "crit"`, ErrInvalid)
