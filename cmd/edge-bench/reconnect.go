package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// The reconnect policy of --reconnect, client.js's (see the browser
// client in go doc ./transports): full jitter, uniform in
// [0, min(backoffMax, backoffMin·2^attempt)), the attempts counted from
// the last connection that stayed open for stableAfter; a wait the edge
// advises (Retry-After, retry_ms, the SSE retry: before a disconnect) is
// taken exactly instead.
const (
	backoffMin  = time.Second
	backoffMax  = 30 * time.Second
	stableAfter = 30 * time.Second
)

// backoff returns the jittered wait before try attempt (0, 1, …) of a
// reconnect.
func backoff(attempt int) time.Duration {
	ceiling := backoffMax
	if attempt < 5 { // 1s·2^5 is past backoffMax
		ceiling = min(backoffMax, backoffMin<<attempt)
	}
	return rand.N(ceiling)
}

// reconnectState is what one subscriber's reconnects did. Its fields are
// written by the subscriber's goroutine only.
type reconnectState struct {
	lostAt     int64 // unix nanoseconds of the first connection loss; 0 while undisturbed
	backAt     int64 // unix nanoseconds when it was last ready again after a loss
	down       bool  // its connection ended and it is not ready again yet
	reconnects int64 // times it was ready again
	refused    int64 // 429 and 503 answers to its reconnects
	attempt    int   // tries since the last stable connection
	readyAt    time.Time
	hint       time.Duration // the wait the edge advised before the next try, 0 for none
}

// stay runs recv, the receive loop of a ready connection, and with
// --reconnect reconnects whenever the connection ends, until ctx is done.
// Without --reconnect (or when ctx ends while it is down) an ended
// connection is recorded in s.ended.
func (s *subscriber) stay(ctx context.Context, recv func() error) {
	for {
		err := recv()
		if ctx.Err() != nil {
			return
		}
		if !s.env.reconnect {
			s.ended = err
			return
		}
		if recv = s.reconnect(ctx); recv == nil {
			return
		}
	}
}

// reconnect waits as the policy above says and connects again to another
// node of --url, at random, with the subscriber's cursor, until one try
// is ready or ctx is done (then it returns nil). The subscribers of a node
// that died thus spread over the others, as a load balancer would spread
// them.
func (s *subscriber) reconnect(ctx context.Context) (receive func() error) {
	rc := &s.rc
	now := time.Now()
	if rc.lostAt == 0 {
		rc.lostAt = now.UnixNano()
	}
	rc.down = true
	if now.Sub(rc.readyAt) >= stableAfter {
		rc.attempt = 0
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := rc.hint
		if wait <= 0 {
			wait = backoff(rc.attempt)
		}
		rc.hint = 0
		rc.attempt++
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if n := len(s.env.bases); n > 1 {
			s.node = (s.node + 1 + rand.IntN(n-1)) % n // another node, at random
		}
		recv, err := s.dial(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			rc.down = false
			rc.reconnects++
			rc.readyAt = time.Now()
			rc.backAt = rc.readyAt.UnixNano()
			return recv
		}
	}
}

// refusedBy notes a refusal of the subscriber's connection, status and
// header, and keeps the wait its Retry-After header advises.
func (s *subscriber) refusedBy(status int, header http.Header) {
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return
	}
	s.rc.refused++
	if secs, err := strconv.Atoi(header.Get("Retry-After")); err == nil && secs > 0 {
		s.rc.hint = time.Duration(secs) * time.Second
	}
}

// advise keeps the wait, in milliseconds, that a disconnect of the edge
// advised.
func (s *subscriber) advise(ms []byte) {
	if n, err := strconv.Atoi(string(ms)); err == nil && n > 0 {
		s.rc.hint = time.Duration(n) * time.Millisecond
	}
}

// retryMsField is the wait a disconnect frame or field advises.
var retryMsField = []byte(`"retry_ms":`)

// adviseRetryMs keeps the wait of the first retry_ms field in disconnect,
// a WebSocket disconnect frame or a long-poll answer's disconnect field.
func (s *subscriber) adviseRetryMs(disconnect []byte) {
	if _, ms, ok := bytes.Cut(disconnect, retryMsField); ok {
		end := 0
		for end < len(ms) && '0' <= ms[end] && ms[end] <= '9' {
			end++
		}
		s.advise(ms[:end])
	}
}

// keepCursor keeps id as the subscriber's cursor, with --reconnect.
func (s *subscriber) keepCursor(id []byte) {
	if s.env.reconnect && len(id) > 0 {
		s.cursor = append(s.cursor[:0], id...)
	}
}

// disturbance is what the reconnects of several subscribers did.
type disturbance struct {
	Disturbed  int   `json:"disturbed"`  // subscribers whose connection ended at least once
	StillDown  int   `json:"still_down"` // of those, not ready again when the run stopped
	Reconnects int64 `json:"reconnects"`
	Refused    int64 `json:"refused"`       // 429 and 503 answers to reconnects
	Gaps       int64 `json:"gaps"`          // gap signals received
	FirstLost  int64 `json:"first_lost_ns"` // unix nanoseconds, 0 when none
	LastBack   int64 `json:"last_back_ns"`  // unix nanoseconds, 0 when none
}

// add counts subscriber s.
func (d *disturbance) add(s *subscriber) {
	d.Gaps += s.gaps
	rc := &s.rc
	if rc.lostAt == 0 {
		return
	}
	d.Disturbed++
	if rc.down {
		d.StillDown++
	}
	d.Reconnects += rc.reconnects
	d.Refused += rc.refused
	d.merge(disturbance{FirstLost: rc.lostAt, LastBack: rc.backAt})
}

// merge adds the counts and times of o.
func (d *disturbance) merge(o disturbance) {
	d.Disturbed += o.Disturbed
	d.StillDown += o.StillDown
	d.Reconnects += o.Reconnects
	d.Refused += o.Refused
	d.Gaps += o.Gaps
	if o.FirstLost != 0 && (d.FirstLost == 0 || o.FirstLost < d.FirstLost) {
		d.FirstLost = o.FirstLost
	}
	d.LastBack = max(d.LastBack, o.LastBack)
}
