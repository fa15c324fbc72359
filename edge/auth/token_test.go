package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/edgeworks/edge/edge"
)

// credentialRequest is a request to target with the Authorization
// headers and the Cookie header given.
func credentialRequest(method, target string, authorization []string, cookie string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for _, h := range authorization {
		r.Header.Add("Authorization", h)
	}
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	return r
}

func TestTokenFromRequest(t *testing.T) {
	long := strings.Repeat("t", MaxTokenLen)
	tooLong := long + "t"
	for _, tc := range []struct {
		name   string
		header []string // Authorization values
		query  string
		cookie string
		want   string
		err    error
	}{
		{name: "none"},
		{name: "bearer", header: []string{"Bearer abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "scheme case", header: []string{"bEARER abc"}, want: "abc"},
		{name: "spaces and tab", header: []string{"Bearer \t abc  "}, want: "abc"},
		{name: "header first", header: []string{"Bearer h"}, query: "access_token=q", cookie: "edge_token=c", want: "h"},
		{name: "query", query: "channel=a&access_token=q", want: "q"},
		{name: "query escaped", query: "access_token=a%2Bb%3D", want: "a+b="},
		{name: "query before cookie", query: "access_token=q", cookie: "edge_token=c", want: "q"},
		{name: "same token twice", query: "access_token=q&access_token=q", want: "q"},
		{name: "empty query token", query: "access_token=", cookie: "edge_token=c", want: "c"},
		{name: "cookie", cookie: "other=1; edge_token=c", want: "c"},
		{name: "other scheme passed over", header: []string{"Basic dXNlcjpwYXNz"}, query: "access_token=q", want: "q"},
		{name: "empty header", header: []string{""}, cookie: "edge_token=c", want: "c"},
		{name: "longest", header: []string{"Bearer " + long}, want: long},

		{name: "bearer alone", header: []string{"Bearer"}, err: errMalformedAuthorization},
		{name: "bearer and spaces", header: []string{"Bearer    "}, err: errMalformedAuthorization},
		{name: "no scheme", header: []string{"abc.def.ghi"}, err: errMalformedAuthorization},
		{name: "token with a space", header: []string{"Bearer abc def"}, err: fromHeader.badBytes},
		{name: "token with a control byte", header: []string{"Bearer abc\x01"}, err: fromHeader.badBytes},
		{name: "two headers", header: []string{"Bearer a", "Bearer b"}, err: errSeveralAuthorization},
		{name: "header too long", header: []string{"Bearer " + tooLong}, err: fromHeader.tooLong},
		{name: "query too long", query: "access_token=" + tooLong, err: fromQuery.tooLong},
		{name: "query with a newline", query: "access_token=a%0Ab", err: fromQuery.badBytes},
		{name: "two query tokens", query: "access_token=a&access_token=b", err: errSeveralParams},
		{name: "cookie too long", cookie: "edge_token=" + tooLong, err: fromCookie.tooLong},
		{name: "bad header beats good query", header: []string{"Bearer"}, query: "access_token=q", err: errMalformedAuthorization},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TokenFromRequest(credentialRequest("GET", "/v1/subscribe?"+tc.query, tc.header, tc.cookie))
			if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("TokenFromRequest = %.20q, %v; want %.20q, %v", got, err, tc.want, tc.err)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, edge.ErrUnauthorized) {
				t.Errorf("error %v does not wrap edge.ErrUnauthorized", err)
			}
			if strings.Contains(err.Error(), "abc") || strings.Contains(err.Error(), "ttt") {
				t.Errorf("error %q quotes the token", err)
			}
		})
	}
}

// BearerToken reads the Authorization: Bearer header and nothing else: a
// token in access_token= or the edge_token cookie is not there, and a
// header of another scheme is refused rather than passed over.
func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header []string // Authorization values
		query  string
		cookie string
		want   string
		err    error
	}{
		{name: "none"},
		{name: "bearer", header: []string{"Bearer abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "scheme case", header: []string{"bearer abc"}, want: "abc"},
		{name: "bearer beside query and cookie", header: []string{"Bearer h"}, query: "access_token=q", cookie: "edge_token=c", want: "h"},
		{name: "query is not read", query: "access_token=q"},
		{name: "cookie is not read", cookie: "edge_token=c"},
		{name: "empty header", header: []string{" "}, cookie: "edge_token=c"},
		{name: "basic", header: []string{"Basic dXNlcjpwYXNz"}, err: errNotBearer},
		{name: "basic beside a cookie", header: []string{"Basic x"}, cookie: "edge_token=c", err: errNotBearer},
		{name: "basic beside a query token", header: []string{"Basic x"}, query: "access_token=q", err: errNotBearer},
		{name: "no scheme", header: []string{"abc.def.ghi"}, err: errMalformedAuthorization},
		{name: "bearer alone", header: []string{"Bearer"}, err: errMalformedAuthorization},
		{name: "two headers", header: []string{"Bearer a", "Bearer b"}, err: errSeveralAuthorization},
		{name: "token with a control byte", header: []string{"Bearer abc\x01"}, err: fromHeader.badBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BearerToken(credentialRequest("POST", "/v1/publish?channel=a&"+tc.query, tc.header, tc.cookie))
			if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("BearerToken = %.20q, %v; want %.20q, %v", got, err, tc.want, tc.err)
			}
			if err != nil && !errors.Is(err, edge.ErrUnauthorized) {
				t.Errorf("error %v does not wrap edge.ErrUnauthorized", err)
			}
		})
	}
}

// tokenErrors lists every error TokenFromRequest returns.
var tokenErrors = []error{
	errSeveralAuthorization, errMalformedAuthorization, errSeveralParams,
	fromHeader.tooLong, fromHeader.badBytes, fromQuery.tooLong, fromQuery.badBytes, fromCookie.tooLong, fromCookie.badBytes,
}

// FuzzTokenFromRequest feeds hostile headers, queries and cookies:
// TokenFromRequest never panics, never returns a token over MaxTokenLen
// or with bytes a header could not carry, and fails only with its own
// fixed errors, which hold no text of the request.
func FuzzTokenFromRequest(f *testing.F) {
	f.Add("Bearer abc.def.ghi", "", "")
	f.Add("", "access_token=q&channel=a", "edge_token=c")
	f.Add("Basic x\nBearer y", "access_token=%00", "")
	f.Fuzz(func(t *testing.T, authorization, query, cookie string) {
		r := &http.Request{Header: http.Header{}, URL: &url.URL{RawQuery: query}}
		if authorization != "" {
			r.Header["Authorization"] = strings.Split(authorization, "\n")
		}
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		tok, err := TokenFromRequest(r)
		if err != nil {
			if tok != "" {
				t.Fatalf("token %q with error %v", tok, err)
			}
			for _, e := range tokenErrors {
				if err == e {
					return
				}
			}
			t.Fatalf("unexpected error %v", err)
		}
		if len(tok) > MaxTokenLen {
			t.Fatalf("token of %d bytes", len(tok))
		}
		for i := 0; i < len(tok); i++ {
			if tok[i] <= ' ' || tok[i] >= 0x7f {
				t.Fatalf("token %q has byte %q", tok, tok[i])
			}
		}
	})
}
