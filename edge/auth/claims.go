package auth

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims is what a verified token says about its bearer. A Claims is not
// changed after Verify returns it and may be shared between goroutines.
type Claims struct {
	Subject   string    // "sub"; "" when absent
	Expiry    time.Time // "exp"; zero: the token has no exp and never expires
	NotBefore time.Time // "nbf"; zero: none
	Channels  []string  // "channels": patterns the token may subscribe to
	Publish   []string  // "publish": patterns the token may publish to
}

// CanSubscribe reports whether the token may subscribe to channel: whether
// channel matches one of its Channels patterns. A nil *Claims may nothing.
func (c *Claims) CanSubscribe(channel string) bool {
	return c != nil && MatchAny(c.Channels, channel)
}

// CanPublish reports whether the token may publish to channel: whether
// channel matches one of its Publish patterns. A nil *Claims may nothing.
func (c *Claims) CanPublish(channel string) bool {
	return c != nil && MatchAny(c.Publish, channel)
}

// tokenClaims is the JSON payload of a token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Channels []string `json:"channels"`
	Publish  []string `json:"publish"`
}

// claims checks the patterns of a verified token and returns its Claims.
func (tc *tokenClaims) claims() (*Claims, error) {
	for _, l := range []struct {
		name     string
		patterns []string
	}{{"channels", tc.Channels}, {"publish", tc.Publish}} {
		for _, p := range l.patterns {
			if msg := patternProblem(p); msg != "" {
				return nil, fmt.Errorf("%w: the %s claim: %s", ErrInvalid, l.name, msg)
			}
		}
	}
	c := &Claims{Subject: tc.Subject, Channels: tc.Channels, Publish: tc.Publish}
	if tc.ExpiresAt != nil {
		c.Expiry = tc.ExpiresAt.Time
	}
	if tc.NotBefore != nil {
		c.NotBefore = tc.NotBefore.Time
	}
	return c, nil
}
