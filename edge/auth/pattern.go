package auth

import (
	"fmt"

	"github.com/edgeworks/edge/edge"
)

// isPatternByte reports whether b may appear in a pattern: a byte of the
// channel alphabet (edge.NameAlphabet) or '*'.
func isPatternByte(b byte) bool { return b == '*' || edge.IsNameByte(b) }

// Match reports whether channel matches pattern, in which '*' stands for
// any run of characters (possibly empty), anywhere and as often as wanted;
// every other byte stands for itself. "user:42:*" matches "user:42:x" and
// "user:42:a:b"; "*" matches every channel.
//
// Match takes at most O(len(pattern)·len(channel)) steps and allocates
// nothing. It does not validate its arguments: a pattern with bytes outside
// the channel alphabet simply matches no valid channel.
func Match(pattern, channel string) bool {
	ok, _ := match(pattern, channel)
	return ok
}

// match is Match, also counting the steps it took (for the fuzz test that
// holds it to its bound).
//
// It walks both strings once, remembering the last '*' seen and where in
// channel that star's run began. On a mismatch it lets the last star eat
// one more byte and retries from there. Earlier stars never need to be
// revisited: whatever they matched, the last star can absorb instead, so
// the walk is at most len(channel) restarts of at most len(pattern) steps.
func match(pattern, channel string) (ok bool, steps int) {
	p, c := 0, 0
	star, mark := -1, 0 // the last '*' in pattern, and where its run in channel ends
	for c < len(channel) {
		steps++
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, c
			p++
		case p < len(pattern) && pattern[p] == channel[c]:
			p++
			c++
		case star >= 0:
			mark++
			p, c = star+1, mark
		default:
			return false, steps
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		steps++
		p++
	}
	return p == len(pattern), steps
}

// MatchAny reports whether channel matches any of patterns (none: false).
func MatchAny(patterns []string, channel string) bool {
	for _, p := range patterns {
		if Match(p, channel) {
			return true
		}
	}
	return false
}

// ValidatePattern returns nil if p is a valid pattern: 1 to
// edge.MaxChannelLen bytes of the channel alphabet (edge.NameAlphabet) and
// '*'. The error names the
// pattern and what is wrong with it.
func ValidatePattern(p string) error {
	if msg := patternProblem(p); msg != "" {
		return fmt.Errorf("auth: %s", msg)
	}
	return nil
}

// patternProblem says what is wrong with pattern p, "" if nothing.
func patternProblem(p string) string {
	if p == "" {
		return `empty pattern; a pattern is a channel name in which '*' stands for any characters, e.g. "public:*"`
	}
	if len(p) > edge.MaxChannelLen {
		return fmt.Sprintf("pattern %q is %d bytes long, the limit is %d", edge.Clip(p), len(p), edge.MaxChannelLen)
	}
	for i := 0; i < len(p); i++ {
		if !isPatternByte(p[i]) {
			return fmt.Sprintf("pattern %q has byte %s at %d; allowed are %s and *", edge.Clip(p), quoteByte(p[i]), i, edge.NameAlphabet)
		}
	}
	return ""
}

// quoteByte quotes b for a message: ' ', '?', '\x00', '\xc3'.
func quoteByte(b byte) string {
	if b < 0x80 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf(`'\x%02x'`, b)
}
