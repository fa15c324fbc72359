package edge

import (
	"errors"
	"net/http"
	"strings"
)

// Error is an error that the edge reports to clients: a stable code, the
// HTTP status it maps to, and a message for people. The sentinels below are
// *Error values; wrap them with fmt.Errorf("%w: detail", ErrX) and the
// client sees the code and status of the sentinel and the whole message.
type Error struct {
	Code   string // stable, machine-readable, e.g. "bad_channel"
	Status int    // HTTP status
	Msg    string // what went wrong, for people
}

func (e *Error) Error() string { return "edge: " + e.Msg }

// Sentinel errors. Match them with errors.Is.
var (
	ErrBadRequest       = &Error{"bad_request", http.StatusBadRequest, "bad request"}
	ErrBadChannel       = &Error{"bad_channel", http.StatusBadRequest, "invalid channel"}
	ErrBadEvent         = &Error{"bad_event", http.StatusBadRequest, "invalid event type"}
	ErrBadCursor        = &Error{"bad_cursor", http.StatusBadRequest, "malformed cursor"}
	ErrTooManyChannels  = &Error{"too_many_channels", http.StatusBadRequest, "too many channels"}
	ErrUnauthorized     = &Error{"unauthorized", http.StatusUnauthorized, "missing or invalid credentials"}
	ErrForbidden        = &Error{"forbidden", http.StatusForbidden, "not allowed"}
	ErrNotFound         = &Error{"not_found", http.StatusNotFound, "not found"}
	ErrPresenceOff      = &Error{"presence_off", http.StatusNotFound, "presence is off for this channel"}
	ErrMethodNotAllowed = &Error{"method_not_allowed", http.StatusMethodNotAllowed, "method not allowed"}
	ErrRequestTimeout   = &Error{"request_timeout", http.StatusRequestTimeout, "request timeout"}
	ErrPayloadTooLarge  = &Error{"payload_too_large", http.StatusRequestEntityTooLarge, "payload too large"}
	ErrHeadersTooLarge  = &Error{"headers_too_large", http.StatusRequestHeaderFieldsTooLarge, "request headers too large"}
	ErrRateLimited      = &Error{"rate_limited", http.StatusTooManyRequests, "rate limited"}
	ErrUnavailable      = &Error{"unavailable", http.StatusServiceUnavailable, "backend unavailable"}
	ErrShuttingDown     = &Error{"shutting_down", http.StatusServiceUnavailable, "shutting down"}
	ErrInternal         = &Error{"internal", http.StatusInternalServerError, "internal error"}
)

// ErrSessionClosed is returned by Session methods after the session closed.
var ErrSessionClosed = errors.New("edge: session closed")

// WithCause returns an error that a client knows as public (an error
// wrapping one of the sentinels) and a log as public and cause: a backend's
// addresses and internals stay out of what clients are told. errors.Is and
// errors.As see both.
func WithCause(public, cause error) error { return &causedError{public, cause} }

type causedError struct{ public, cause error }

func (e *causedError) Error() string   { return e.public.Error() + ": " + e.cause.Error() }
func (e *causedError) Unwrap() []error { return []error{e.public, e.cause} }

// Classify maps any error to what a client is told: the code and status of
// the *Error it wraps (ErrInternal when it wraps none) and a message. The
// message of an internal error is generic, and a cause attached with
// WithCause is left out, so internals never leak.
func Classify(err error) (code string, status int, message string) {
	var e *Error
	if !errors.As(err, &e) {
		return ErrInternal.Code, ErrInternal.Status, ErrInternal.Msg
	}
	var c *causedError
	if errors.As(err, &c) {
		err = c.public
	}
	return e.Code, e.Status, strings.TrimPrefix(err.Error(), "edge: ")
}

// Disconnect tells a client why its connection ends and whether it should
// reconnect. Codes 4000–4499 mean "reconnect (with your cursor)", codes
// 4500–4999 mean "do not reconnect with the same request"; a draining node
// sends 1012, WebSocket's "service restart" (reconnect). WebSocket sends
// the code in the close frame; SSE and long-polling send it as a final
// event or response field.
type Disconnect struct {
	Code   int
	Reason string
}

// Reconnect reports whether the client should reconnect.
func (d Disconnect) Reconnect() bool { return d.Code < 4500 }

// The disconnects the edge sends.
var (
	DisconnectShutdown    = Disconnect{1012, "shutdown"}
	DisconnectSlow        = Disconnect{4002, "slow_consumer"}
	DisconnectServerError = Disconnect{4003, "server_error"}
	DisconnectResync      = Disconnect{4004, "resync"}
	DisconnectExpired     = Disconnect{4005, "token_expired"}
	DisconnectBadRequest  = Disconnect{4500, "bad_request"}
)

// Clip shortens untrusted input to at most 64 bytes (and an ellipsis)
// before it is quoted in an error message, so that a huge or hostile value
// cannot flood a reply or a log line.
func Clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
