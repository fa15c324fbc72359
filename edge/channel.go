package edge

import (
	"fmt"
	"strings"
)

// Limits on names that come from the network.
const (
	// MaxChannelLen is the longest channel name, in bytes.
	MaxChannelLen = 200
	// MaxEventLen is the longest event type, in bytes.
	MaxEventLen = 64
)

// Reserved event types: the edge sends these itself on SSE, so publishers
// may not use them (nor the presence events EventJoin and EventLeave).
const (
	EventGap        = "gap"
	EventDisconnect = "disconnect"
)

// IsReservedEvent reports whether event is one the edge reserves for itself.
func IsReservedEvent(event string) bool {
	switch event {
	case EventGap, EventDisconnect, EventJoin, EventLeave:
		return true
	}
	return false
}

// NameAlphabet is the one definition of the bytes that channel names and
// event types may hold, as space-separated ranges ("A-Z") and single bytes:
// the validation below, auth's patterns and the Redis function (resume's
// edge.lua, pinned to it by a test) all follow it, and error messages quote
// it.
const NameAlphabet = "A-Z a-z 0-9 _ - . : @ /"

// nameChars marks the bytes of NameAlphabet.
var nameChars = func() (t [256]bool) {
	for _, r := range strings.Fields(NameAlphabet) {
		if len(r) == 3 && r[1] == '-' {
			for c := r[0]; c <= r[2]; c++ {
				t[c] = true
			}
		} else {
			t[r[0]] = true
		}
	}
	return t
}()

// IsNameByte reports whether b belongs to the name alphabet.
func IsNameByte(b byte) bool { return nameChars[b] }

// ValidateChannel returns nil if name is a valid channel name (1 to
// MaxChannelLen bytes of the name alphabet), else an error wrapping
// ErrBadChannel.
func ValidateChannel(name string) error {
	if err := validateName(name, MaxChannelLen); err != nil {
		return fmt.Errorf("%w: channel %s", ErrBadChannel, err)
	}
	return nil
}

// ValidateEvent returns nil if event is empty (the default "message" type)
// or a valid event type (1 to MaxEventLen bytes of the name alphabet, not a
// reserved type), else an error wrapping ErrBadEvent.
func ValidateEvent(event string) error {
	if event == "" {
		return nil
	}
	if err := validateName(event, MaxEventLen); err != nil {
		return fmt.Errorf("%w: event type %s", ErrBadEvent, err)
	}
	if IsReservedEvent(event) {
		return fmt.Errorf("%w: event type %q is reserved for the edge", ErrBadEvent, event)
	}
	return nil
}

func validateName(s string, max int) error {
	if s == "" {
		return fmt.Errorf("is empty")
	}
	if len(s) > max {
		return fmt.Errorf("is %d bytes long, the limit is %d", len(s), max)
	}
	for i := 0; i < len(s); i++ {
		if !nameChars[s[i]] {
			return fmt.Errorf("%q has byte %q at %d; allowed are %s", Clip(s), s[i], i, NameAlphabet)
		}
	}
	return nil
}
