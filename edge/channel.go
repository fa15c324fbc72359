package edge

import "fmt"

// Limits on names that come from the network.
const (
	// MaxChannelLen is the longest channel name, in bytes.
	MaxChannelLen = 200
	// MaxEventLen is the longest event type, in bytes.
	MaxEventLen = 64
)

// Reserved event types: the edge sends these itself on SSE, so publishers
// may not use them.
const (
	EventGap        = "gap"
	EventDisconnect = "disconnect"
)

// nameChars marks the bytes allowed in channel names and event types:
// A-Z a-z 0-9 _ - . : @ /
var nameChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_-.:@/" {
		t[c] = true
	}
	return t
}()

// ValidateChannel returns nil if name is a valid channel name (1–200 bytes
// of A-Z a-z 0-9 _ - . : @ /), else an error wrapping ErrBadChannel.
func ValidateChannel(name string) error {
	if err := validateName(name, MaxChannelLen); err != nil {
		return fmt.Errorf("%w: channel %s", ErrBadChannel, err)
	}
	return nil
}

// ValidateEvent returns nil if event is empty (the default "message" type)
// or a valid event type (1–64 bytes of the channel-name alphabet, not a
// reserved type), else an error wrapping ErrBadEvent.
func ValidateEvent(event string) error {
	if event == "" {
		return nil
	}
	if err := validateName(event, MaxEventLen); err != nil {
		return fmt.Errorf("%w: event type %s", ErrBadEvent, err)
	}
	if event == EventGap || event == EventDisconnect {
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
			return fmt.Errorf("%q has byte %q at %d; allowed are A-Z a-z 0-9 _ - . : @ /", clip(s), s[i], i)
		}
	}
	return nil
}
