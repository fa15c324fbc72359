package transports

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/edgeworks/edge/edge"
)

// retryAfterJitter is the most whole seconds a resume refusal adds at
// random to its Retry-After, so that a refused flood does not come back
// in lock-step.
const retryAfterJitter = 2

// admission bounds the resuming subscribes (those with a cursor) that a
// node admits a second, whatever their client: a reconnect flood — the
// subscribers of a node that died, all resuming at once — is served at
// that pace, and the rest are told to come back later (429 rate_limited
// with Retry-After) before their history is read. It is safe for
// concurrent use.
type admission struct {
	rate float64

	mu      sync.Mutex // guards b, backlog, at
	b       bucket
	backlog float64   // refused resumes not yet worked off at rate
	at      time.Time // when backlog was last brought up to date
}

func newAdmission(perSecond int) *admission { return &admission{rate: float64(perSecond)} }

// admit takes a place for one resume at now, or returns an error wrapping
// edge.ErrRateLimited with the Retry-After it advises: the whole seconds
// the refusals so far need at the node's rate, plus 0 to
// retryAfterJitter seconds at random.
func (a *admission) admit(now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ok, _ := a.b.take(a.rate, now); ok {
		return nil
	}
	if !a.at.IsZero() {
		a.backlog = max(0, a.backlog-now.Sub(a.at).Seconds()*a.rate)
	}
	a.at = now
	a.backlog++
	secs := int(math.Ceil(a.backlog/a.rate)) + rand.IntN(retryAfterJitter+1)
	return rateLimitedError{
		fmt.Errorf("%w: more than %v resumes a second on this node; retry in %ds", edge.ErrRateLimited, a.rate, secs),
		time.Duration(secs) * time.Second,
	}
}

// admitResume takes a place in the node's resume rate for a subscribe
// request r with a cursor, or refuses it. A long-poll counts only as the
// first subscribe on its connection: the next polls of a client that
// keeps its connection are not new.
func (s *Server) admitResume(r *http.Request, poll bool) error {
	if poll && !firstSubscribe(r) {
		return nil
	}
	return s.resumes.admit(time.Now())
}
