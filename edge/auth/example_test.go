package auth_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/edgeworks/edge/edge/auth"
	"github.com/golang-jwt/jwt/v5"
)

func ExampleMatch() {
	fmt.Println(auth.Match("user:42:*", "user:42:inbox"))
	fmt.Println(auth.Match("user:42:*", "user:42:a:b"))
	fmt.Println(auth.Match("user:42:*", "user:43:inbox"))
	fmt.Println(auth.Match("*", "anything"))
	// Output:
	// true
	// true
	// false
	// true
}

// A backend issues a token for user 42; the edge verifies it and checks
// each channel the client asks for against its claims.
func ExampleVerifier() {
	secret := []byte("a-random-secret-of-32-bytes-or-more")
	token, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":      "42",
		"channels": []string{"user:42:*", "public:*"},
		"publish":  []string{"user:42:outbox"},
	}).SignedString(secret)

	v, err := auth.New(auth.Config{Secret: secret})
	if err != nil {
		fmt.Println(err)
		return
	}
	r := httptest.NewRequest("GET", "/v1/subscribe?channel=user:42:inbox&access_token="+token, nil)
	tok, _ := auth.TokenFromRequest(r)
	claims, err := v.Verify(context.Background(), tok)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.Subject, claims.Expiry.IsZero())
	fmt.Println(claims.CanSubscribe("user:42:inbox"), claims.CanSubscribe("user:43:inbox"))
	fmt.Println(claims.CanPublish("user:42:outbox"), claims.CanPublish("public:news"))

	_, err = v.Verify(context.Background(), tok+"x")
	fmt.Println(err)
	// Output:
	// 42 true
	// true false
	// true false
	// edge: missing or invalid credentials: invalid token: the HS256 signature does not verify
}
