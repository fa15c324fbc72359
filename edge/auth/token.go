package auth

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/edgeworks/edge/edge"
)

// MaxTokenLen is the longest token, in bytes, that TokenFromRequest returns
// and Verify parses.
const MaxTokenLen = 8 << 10

// Where TokenFromRequest looks, besides the Authorization header.
const (
	// TokenParam is the query parameter that carries a token, for clients
	// that cannot set headers (EventSource).
	TokenParam = "access_token"
	// TokenCookie is the cookie that carries a token.
	TokenCookie = "edge_token"
)

// The errors of TokenFromRequest. Each wraps edge.ErrUnauthorized, and none
// carries any text of the request, so no token can leak through them.
var (
	errSeveralAuthorization   = fmt.Errorf("%w: several Authorization headers; send one", edge.ErrUnauthorized)
	errMalformedAuthorization = fmt.Errorf(`%w: malformed Authorization header; send "Authorization: Bearer <token>"`, edge.ErrUnauthorized)
	errSeveralParams          = fmt.Errorf("%w: several different %s parameters; send one", edge.ErrUnauthorized, TokenParam)
	errNotBearer              = fmt.Errorf(`%w: the Authorization header has a scheme other than Bearer; send "Authorization: Bearer <token>"`, edge.ErrUnauthorized)

	fromHeader = newTokenSource("the Bearer token in the Authorization header")
	fromQuery  = newTokenSource("the " + TokenParam + " parameter")
	fromCookie = newTokenSource("the " + TokenCookie + " cookie")
)

// tokenSource holds the errors about a token from one place.
type tokenSource struct {
	tooLong, badBytes error
}

func newTokenSource(what string) tokenSource {
	return tokenSource{
		tooLong:  fmt.Errorf("%w: %s is longer than %d bytes", edge.ErrUnauthorized, what, MaxTokenLen),
		badBytes: fmt.Errorf("%w: %s has bytes other than printable ASCII", edge.ErrUnauthorized, what),
	}
}

// check returns tok if it is a plausible token from src.
func (src tokenSource) check(tok string) (string, error) {
	if len(tok) > MaxTokenLen {
		return "", src.tooLong
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] >= 0x7f {
			return "", src.badBytes
		}
	}
	return tok, nil
}

// TokenFromRequest returns the token a request carries, looking in order
// at:
//
//  1. the Authorization header, "Bearer TOKEN" (scheme case-insensitive);
//     a header with another scheme (say Basic, from a proxy in front) is
//     not the edge's and is passed over;
//  2. the access_token query parameter, which EventSource can send;
//  3. the edge_token cookie.
//
// It returns "" and nil when there is none. A token over MaxTokenLen bytes
// or with bytes other than printable ASCII, a malformed or repeated
// Authorization header, or several different access_token parameters, is
// an error wrapping edge.ErrUnauthorized whose message holds no token text.
//
// TokenFromRequest does not verify the token.
func TokenFromRequest(r *http.Request) (string, error) {
	if tok, found, err := bearer(r.Header); found || err != nil {
		return tok, err
	}
	if r.URL != nil && r.URL.RawQuery != "" {
		var tok string
		for _, v := range r.URL.Query()[TokenParam] {
			switch {
			case v == "" || v == tok:
			case tok != "":
				return "", errSeveralParams
			default:
				tok = v
			}
		}
		if tok != "" {
			return fromQuery.check(tok)
		}
	}
	if c, err := r.Cookie(TokenCookie); err == nil && c.Value != "" {
		return fromCookie.check(c.Value)
	}
	return "", nil
}

// BearerToken returns the token of the request's "Authorization: Bearer"
// header, and "" and nil without an Authorization header. Unlike
// TokenFromRequest it looks nowhere else, for requests that take
// credentials from the header only (publishing): a browser sends a cookie
// with any site's form, and a URL leaks into logs and Referer headers. An
// Authorization header of another scheme (Basic) is an error, as are the
// header errors of TokenFromRequest; each wraps edge.ErrUnauthorized and
// holds no token text.
//
// BearerToken does not verify the token.
func BearerToken(r *http.Request) (string, error) {
	tok, found, err := bearer(r.Header)
	if !found && err == nil && strings.Trim(r.Header.Get("Authorization"), " \t") != "" {
		return "", errNotBearer
	}
	return tok, err
}

// bearer returns the token of an "Authorization: Bearer" header; found is
// false when there is no such header.
func bearer(h http.Header) (tok string, found bool, err error) {
	vals := h.Values("Authorization")
	switch {
	case len(vals) == 0:
		return "", false, nil
	case len(vals) > 1:
		return "", true, errSeveralAuthorization
	}
	v := strings.Trim(vals[0], " \t")
	if v == "" {
		return "", false, nil
	}
	i := strings.IndexAny(v, " \t")
	if i < 0 {
		return "", true, errMalformedAuthorization
	}
	if !strings.EqualFold(v[:i], "Bearer") {
		return "", false, nil
	}
	tok = strings.TrimLeft(v[i:], " \t")
	if tok == "" {
		return "", true, errMalformedAuthorization
	}
	tok, err = fromHeader.check(tok)
	return tok, true, err
}
