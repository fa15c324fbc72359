package edge

import (
	"errors"
	"strings"
	"testing"
)

// nameAlphabet is every byte the contract allows in channel names and
// event types, written out independently of nameChars.
const nameAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:@/"

// refValidName is an independent check of the contract: 1..max bytes, each
// one of nameAlphabet.
func refValidName(s string, max int) bool {
	if len(s) < 1 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(nameAlphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}

func TestValidateChannel(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "one byte", in: "a"},
		{name: "word", in: "news"},
		{name: "every allowed byte", in: nameAlphabet},
		{name: "realistic", in: "tenant:42/orders@eu-1.v2_x"},
		{name: "only punctuation", in: "_-.:@/"},
		{name: "digits", in: "0"},
		{name: "200 bytes", in: strings.Repeat("c", MaxChannelLen)},

		{name: "empty", in: "", wantErr: true},
		{name: "201 bytes", in: strings.Repeat("c", MaxChannelLen+1), wantErr: true},
		{name: "very long", in: strings.Repeat("c", 1<<20), wantErr: true},
		{name: "space", in: "a b", wantErr: true},
		{name: "leading space", in: " a", wantErr: true},
		{name: "comma (cursor separator)", in: "a,b", wantErr: true},
		{name: "equals (cursor separator)", in: "a=b", wantErr: true},
		{name: "query characters", in: "a?b&c", wantErr: true},
		{name: "hash", in: "a#b", wantErr: true},
		{name: "percent", in: "a%20b", wantErr: true},
		{name: "plus", in: "a+b", wantErr: true},
		{name: "star", in: "*", wantErr: true},
		{name: "tilde", in: "~a", wantErr: true},
		{name: "backslash", in: `a\b`, wantErr: true},
		{name: "quote", in: `a"b`, wantErr: true},
		{name: "newline", in: "a\n", wantErr: true},
		{name: "carriage return", in: "a\rb", wantErr: true},
		{name: "NUL", in: "a\x00", wantErr: true},
		{name: "DEL", in: "a\x7f", wantErr: true},
		{name: "latin-1 letter", in: "caf\u00e9", wantErr: true},
		{name: "CJK", in: "\u65e5\u672c", wantErr: true},
		{name: "invalid utf-8", in: "a\xff", wantErr: true},
		{name: "fullwidth letter", in: "\uff41", wantErr: true},
		{name: "200 bytes with a bad last byte", in: strings.Repeat("c", MaxChannelLen-1) + " ", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateChannel(tt.in)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("ValidateChannel(%q): %v", tt.in, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateChannel(%q) = nil, want an error", Clip(tt.in))
			}
			if !errors.Is(err, ErrBadChannel) {
				t.Errorf("ValidateChannel(%q) error %v does not wrap ErrBadChannel", Clip(tt.in), err)
			}
			if errors.Is(err, ErrBadEvent) {
				t.Errorf("ValidateChannel(%q) error %v wraps ErrBadEvent", Clip(tt.in), err)
			}
			if len(err.Error()) > 512 {
				t.Errorf("ValidateChannel error message is %d bytes long; untrusted input must be clipped", len(err.Error()))
			}
		})
	}
}

func TestValidateEvent(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "empty means the default type", in: ""},
		{name: "word", in: "price"},
		{name: "every allowed byte but within the limit", in: "AZaz09_-.:@/"},
		{name: "64 bytes", in: strings.Repeat("e", MaxEventLen)},
		{name: "reserved as a prefix only", in: "gaps"},
		{name: "reserved with a suffix", in: "disconnected"},
		{name: "reserved in a namespace", in: "app:gap"},

		{name: "65 bytes", in: strings.Repeat("e", MaxEventLen+1), wantErr: true},
		{name: "reserved gap", in: EventGap, wantErr: true},
		{name: "reserved disconnect", in: EventDisconnect, wantErr: true},
		{name: "space", in: "a b", wantErr: true},
		{name: "newline (would inject an SSE field)", in: "x\ndata: y", wantErr: true},
		{name: "carriage return", in: "x\r", wantErr: true},
		{name: "NUL", in: "\x00", wantErr: true},
		{name: "non-ASCII", in: "pr\u00efce", wantErr: true},
		{name: "invalid utf-8", in: "\xff", wantErr: true},
		{name: "comma", in: "a,b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateEvent(tt.in)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("ValidateEvent(%q): %v", tt.in, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateEvent(%q) = nil, want an error", tt.in)
			}
			if !errors.Is(err, ErrBadEvent) {
				t.Errorf("ValidateEvent(%q) error %v does not wrap ErrBadEvent", tt.in, err)
			}
			if errors.Is(err, ErrBadChannel) {
				t.Errorf("ValidateEvent(%q) error %v wraps ErrBadChannel", tt.in, err)
			}
		})
	}
}

func FuzzValidateChannel(f *testing.F) {
	for _, s := range []string{
		"a", "news", nameAlphabet, "tenant:42/orders@eu-1.v2_x",
		strings.Repeat("c", MaxChannelLen), strings.Repeat("c", MaxChannelLen+1),
		"", "a b", "a,b=1-2", "caf\u00e9", "a\xff", "a\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateChannel(s)
		want := refValidName(s, MaxChannelLen)
		if want && err != nil {
			t.Fatalf("ValidateChannel(%q) = %v, want nil", s, err)
		}
		if !want {
			if err == nil {
				t.Fatalf("ValidateChannel(%q) = nil, want an error", s)
			}
			if !errors.Is(err, ErrBadChannel) {
				t.Fatalf("ValidateChannel(%q) error %v does not wrap ErrBadChannel", s, err)
			}
			if len(err.Error()) > 512 {
				t.Fatalf("ValidateChannel(%q) error message is %d bytes long; untrusted input must be clipped", s, len(err.Error()))
			}
		}
	})
}

func FuzzValidateEvent(f *testing.F) {
	for _, s := range []string{
		"", "price", "gap", "disconnect", "gaps", strings.Repeat("e", MaxEventLen),
		strings.Repeat("e", MaxEventLen+1), "x\ndata: y", "a b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateEvent(s)
		want := s == "" || (refValidName(s, MaxEventLen) && s != "gap" && s != "disconnect")
		if want && err != nil {
			t.Fatalf("ValidateEvent(%q) = %v, want nil", s, err)
		}
		if !want {
			if err == nil {
				t.Fatalf("ValidateEvent(%q) = nil, want an error", s)
			}
			if !errors.Is(err, ErrBadEvent) {
				t.Fatalf("ValidateEvent(%q) error %v does not wrap ErrBadEvent", s, err)
			}
		}
	})
}
