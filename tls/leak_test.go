package edgetls

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when goroutines outlive its tests, except two
// that certmagic owns and no caller can stop: the rate limiter it keeps per
// ACME CA and account in a package-level map for the life of the process,
// and the lock-file keeper that notices a released lock only on its next
// five-second tick.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*RingBufferRateLimiter).loop"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"),
	)
}
