package auth

import (
	"regexp"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, channel string
		want             bool
	}{
		{"user:42:*", "user:42:x", true},
		{"user:42:*", "user:42:a:b", true},
		{"user:42:*", "user:42:", true},
		{"user:42:*", "user:42", false},
		{"user:42:*", "user:43:x", false},
		{"user:42:*", "user:420:x", false},
		{"*", "anything", true},
		{"*", "a", true},
		{"**", "a", true},
		{"public:*", "public:news", true},
		{"public:*", "publicnews", false},
		{"*:news", "eu:news", true},
		{"*:news", "eu:news:x", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a*b*c", "acb", false},
		{"*a*a*b", "aaab", true},
		{"*a*a*b", "aab", true},
		{"*a*a*b", "ab", false},
		{"room:*:chat", "room:1:chat", true},
		{"room:*:chat", "room:1:2:chat", true},
		{"room:*:chat", "room::chat", true},
		{"room:*:chat", "room:1:chatter", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
		{"exact", "exac", false},
		{"a.b", "aXb", false}, // '.' is no metacharacter
		{"a?b", "aXb", false}, // neither is '?'
		{"*x", "*x", true},    // a '*' in the channel is just a byte
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
	} {
		if got := Match(tc.pattern, tc.channel); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.channel, got, tc.want)
		}
	}
}

func TestMatchAny(t *testing.T) {
	ps := []string{"user:42:*", "public:*"}
	for ch, want := range map[string]bool{"user:42:x": true, "public:a": true, "user:43:x": false} {
		if got := MatchAny(ps, ch); got != want {
			t.Errorf("MatchAny(%q, %q) = %v", ps, ch, got)
		}
	}
	if MatchAny(nil, "x") {
		t.Error("MatchAny(nil) matched")
	}
}

// The worst cases for a backtracking matcher stay within the bound.
func TestMatchSteps(t *testing.T) {
	for _, tc := range []struct{ pattern, channel string }{
		{strings.Repeat("*a", 100), strings.Repeat("a", 199) + "b"},
		{strings.Repeat("*a", 99) + "*b", strings.Repeat("a", 200)},
		{"*" + strings.Repeat("a", 199), strings.Repeat("a", 200) + "b"},
		{strings.Repeat("a*", 100), strings.Repeat("a", 200)},
	} {
		_, steps := match(tc.pattern, tc.channel)
		if bound := stepBound(tc.pattern, tc.channel); steps > bound {
			t.Errorf("%d steps for %q against %q, bound %d", steps, tc.pattern, tc.channel, bound)
		}
	}
}

func stepBound(pattern, channel string) int { return (len(pattern) + 1) * (len(channel) + 2) }

func TestValidatePattern(t *testing.T) {
	for _, p := range []string{"*", "public:*", "user:42:*", "a-z_A.Z:0@9/*", strings.Repeat("a", 200)} {
		if err := ValidatePattern(p); err != nil {
			t.Errorf("ValidatePattern(%q): %v", p, err)
		}
	}
	for _, tc := range []struct{ p, want string }{
		{"", "auth: empty pattern"},
		{strings.Repeat("a", 201), "is 201 bytes long, the limit is 200"},
		{"user 42", `pattern "user 42" has byte ' ' at 4; allowed are A-Z a-z 0-9 _ - . : @ / and *`},
		{"a?b", `byte '?' at 1`},
		{"é", `byte '\xc3' at 0`},
		{"a\x00", `byte '\x00' at 1`},
	} {
		err := ValidatePattern(tc.p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidatePattern(%q) = %v, want an error saying %q", tc.p, err, tc.want)
		}
	}
}

// FuzzMatch holds Match to a reference (an anchored regexp) within the
// alphabet, and to its step bound on any input.
func FuzzMatch(f *testing.F) {
	f.Add("user:42:*", "user:42:x")
	f.Add("*a*a*b", "aaab")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, pattern, channel string) {
		checkMatch(t, pattern, channel)
		// The same input over a small alphabet, where stars and
		// near-misses are frequent.
		checkMatch(t, project(pattern, "ab.*"), project(channel, "ab."))
	})
}

func checkMatch(t *testing.T, pattern, channel string) {
	got, steps := match(pattern, channel)
	if bound := stepBound(pattern, channel); steps > bound {
		t.Fatalf("%d steps for %q against %q, bound %d", steps, pattern, channel, bound)
	}
	if !inAlphabet(pattern, true) || !inAlphabet(channel, false) {
		return
	}
	parts := strings.Split(pattern, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	want := regexp.MustCompile(`^` + strings.Join(parts, `.*`) + `$`).MatchString(channel)
	if got != want {
		t.Fatalf("Match(%q, %q) = %v, the regexp says %v", pattern, channel, got, want)
	}
}

// project maps each byte of s to one of alphabet.
func project(s, alphabet string) string {
	b := []byte(s)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// inAlphabet reports whether s has only channel bytes (and '*' if star).
func inAlphabet(s string, star bool) bool {
	for i := 0; i < len(s); i++ {
		if !isPatternByte(s[i]) || (!star && s[i] == '*') {
			return false
		}
	}
	return true
}
