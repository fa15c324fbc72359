package edge

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

const maxU64 = "18446744073709551615"

func TestParseID(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ID
		wantErr bool
	}{
		{name: "zero", in: "0-0", want: ID{}},
		{name: "small", in: "1-2", want: ID{Ms: 1, Seq: 2}},
		{name: "redis stream id", in: "1732270000000-3", want: ID{Ms: 1732270000000, Seq: 3}},
		{name: "ms only means seq 0", in: "123", want: ID{Ms: 123}},
		{name: "max ms", in: maxU64 + "-0", want: ID{Ms: math.MaxUint64}},
		{name: "max seq", in: "0-" + maxU64, want: ID{Seq: math.MaxUint64}},
		{name: "max both", in: maxU64 + "-" + maxU64, want: ID{Ms: math.MaxUint64, Seq: math.MaxUint64}},
		{name: "max ms only", in: maxU64, want: ID{Ms: math.MaxUint64}},

		{name: "empty", in: "", wantErr: true},
		{name: "dash only", in: "-", wantErr: true},
		{name: "missing seq", in: "1-", wantErr: true},
		{name: "missing ms", in: "-1", wantErr: true},
		{name: "double dash", in: "1--2", wantErr: true},
		{name: "three parts", in: "1-2-3", wantErr: true},
		{name: "plus sign", in: "+1-2", wantErr: true},
		{name: "plus sign on seq", in: "1-+2", wantErr: true},
		{name: "leading space", in: " 1-2", wantErr: true},
		{name: "trailing space", in: "1-2 ", wantErr: true},
		{name: "trailing newline", in: "1-2\n", wantErr: true},
		{name: "trailing NUL", in: "1-2\x00", wantErr: true},
		{name: "decimal point", in: "1.5-2", wantErr: true},
		{name: "hex", in: "0x1-0", wantErr: true},
		{name: "exponent", in: "1e3-0", wantErr: true},
		{name: "underscore", in: "1_000-0", wantErr: true},
		{name: "letters", in: "abc", wantErr: true},
		{name: "redis special", in: "*", wantErr: true},
		{name: "ms overflow", in: "18446744073709551616-0", wantErr: true},
		{name: "seq overflow", in: "0-18446744073709551616", wantErr: true},
		{name: "ms overflow alone", in: "18446744073709551616", wantErr: true},
		{name: "twenty nines", in: "99999999999999999999-0", wantErr: true},
		{name: "very long", in: strings.Repeat("1", 10000), wantErr: true},
		{name: "very long with dash", in: strings.Repeat("1", 5000) + "-" + strings.Repeat("2", 5000), wantErr: true},
		{name: "arabic-indic digits", in: "\u0661-\u0662", wantErr: true},
		{name: "fullwidth digits", in: "\uff11-\uff12", wantErr: true},
		{name: "superscript digit", in: "\u00b9-0", wantErr: true},
		{name: "invalid utf-8", in: "1-\xff", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseID(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseID(%q) = %v, want an error", Clip(tt.in), got)
				}
				if !errors.Is(err, ErrBadCursor) {
					t.Errorf("ParseID(%q) error %v does not wrap ErrBadCursor", Clip(tt.in), err)
				}
				if len(err.Error()) > 512 {
					t.Errorf("ParseID error message is %d bytes long; untrusted input must be clipped", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseID(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseID(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// ParseIDBytes reads exactly what ParseID reads, and allocates nothing for
// a valid id.
func TestParseIDBytes(t *testing.T) {
	for _, in := range []string{"0-0", "1732270000000-3", "123", maxU64 + "-" + maxU64, "", "1-", "1--2", "18446744073709551616-0", strings.Repeat("1", 100)} {
		t.Run(Clip(in), func(t *testing.T) {
			want, wantErr := ParseID(in)
			got, err := ParseIDBytes([]byte(in))
			if got != want || (err == nil) != (wantErr == nil) {
				t.Fatalf("ParseIDBytes(%q) = %v, %v; ParseID gives %v, %v", Clip(in), got, err, want, wantErr)
			}
			if err != nil && (!errors.Is(err, ErrBadCursor) || err.Error() != wantErr.Error()) {
				t.Fatalf("ParseIDBytes(%q) error %q, ParseID's %q", Clip(in), err, wantErr)
			}
		})
	}
	b := []byte("1732270000000-3")
	if n := testing.AllocsPerRun(100, func() { ParseIDBytes(b) }); n != 0 {
		t.Fatalf("ParseIDBytes of a valid id: %.1f allocations", n)
	}
}

func TestIDString(t *testing.T) {
	tests := []struct {
		name string
		id   ID
		want string
	}{
		{name: "zero", id: ID{}, want: "0-0"},
		{name: "seq zero is written", id: ID{Ms: 123}, want: "123-0"},
		{name: "redis stream id", id: ID{Ms: 1732270000000, Seq: 3}, want: "1732270000000-3"},
		{name: "max", id: ID{Ms: math.MaxUint64, Seq: math.MaxUint64}, want: maxU64 + "-" + maxU64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.id.String(); got != tt.want {
				t.Errorf("%+v.String() = %q, want %q", tt.id, got, tt.want)
			}
			if got := string(tt.id.AppendTo([]byte("x:"))); got != "x:"+tt.want {
				t.Errorf("%+v.AppendTo(\"x:\") = %q, want %q", tt.id, got, "x:"+tt.want)
			}
			back, err := ParseID(tt.want)
			if err != nil || back != tt.id {
				t.Errorf("ParseID(%q) = %+v, %v; want %+v", tt.want, back, err, tt.id)
			}
		})
	}
}

func TestIDCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b ID
		want int
	}{
		{name: "zero equals zero", a: ID{}, b: ID{}, want: 0},
		{name: "equal", a: ID{Ms: 5, Seq: 7}, b: ID{Ms: 5, Seq: 7}, want: 0},
		{name: "seq decides within a millisecond", a: ID{Ms: 5, Seq: 1}, b: ID{Ms: 5, Seq: 2}, want: -1},
		{name: "ms decides before seq", a: ID{Ms: 4, Seq: math.MaxUint64}, b: ID{Ms: 5}, want: -1},
		{name: "later ms with smaller seq", a: ID{Ms: 6}, b: ID{Ms: 5, Seq: 9}, want: 1},
		{name: "zero before everything", a: ID{}, b: ID{Seq: 1}, want: -1},
		{name: "max after everything", a: ID{Ms: math.MaxUint64, Seq: math.MaxUint64}, b: ID{Ms: math.MaxUint64, Seq: math.MaxUint64 - 1}, want: 1},
		{name: "numeric not lexical", a: ID{Ms: 9}, b: ID{Ms: 10}, want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got := tt.b.Compare(tt.a); got != -tt.want {
				t.Errorf("%v.Compare(%v) = %d, want %d", tt.b, tt.a, got, -tt.want)
			}
			if got := tt.a.Less(tt.b); got != (tt.want < 0) {
				t.Errorf("%v.Less(%v) = %t, want %t", tt.a, tt.b, got, tt.want < 0)
			}
		})
	}
}

func TestIDNext(t *testing.T) {
	tests := []struct {
		name  string
		id    ID
		nowMs uint64
		want  ID
	}{
		{name: "clock moved on", id: ID{Ms: 100, Seq: 7}, nowMs: 101, want: ID{Ms: 101}},
		{name: "first id after zero", id: ID{}, nowMs: 1732270000000, want: ID{Ms: 1732270000000}},
		{name: "same millisecond", id: ID{Ms: 100, Seq: 7}, nowMs: 100, want: ID{Ms: 100, Seq: 8}},
		{name: "clock went back", id: ID{Ms: 100, Seq: 7}, nowMs: 50, want: ID{Ms: 100, Seq: 8}},
		{name: "zero clock on zero id", id: ID{}, nowMs: 0, want: ID{Seq: 1}},
		{name: "max clock", id: ID{Ms: 5}, nowMs: math.MaxUint64, want: ID{Ms: math.MaxUint64}},
		// Redis (streamIncrID) carries into the millisecond when the sequence
		// is exhausted; wrapping the sequence to 0 would go backwards.
		{name: "seq exhausted carries into ms", id: ID{Ms: 100, Seq: math.MaxUint64}, nowMs: 100, want: ID{Ms: 101}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.id.Next(tt.nowMs)
			if got != tt.want {
				t.Errorf("%v.Next(%d) = %v, want %v", tt.id, tt.nowMs, got, tt.want)
			}
			if got.Compare(tt.id) <= 0 {
				t.Errorf("%v.Next(%d) = %v does not sort after %v; ids must be strictly increasing", tt.id, tt.nowMs, got, tt.id)
			}
		})
	}
}

func TestIDIsZero(t *testing.T) {
	tests := []struct {
		name string
		id   ID
		want bool
	}{
		{name: "zero", id: ID{}, want: true},
		{name: "seq set", id: ID{Seq: 1}, want: false},
		{name: "ms set", id: ID{Ms: 1}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.id.IsZero(); got != tt.want {
				t.Errorf("%v.IsZero() = %t, want %t", tt.id, got, tt.want)
			}
		})
	}
}

// refParseID is an independent reading of the id grammar: "<ms>" or
// "<ms>-<seq>", each an unsigned decimal of ASCII digits that fits in 64
// bits. It reports ok=false for anything else.
func refParseID(s string) (id ID, ok bool) {
	parts := strings.Split(s, "-")
	if len(parts) > 2 {
		return ID{}, false
	}
	var nums [2]uint64
	for i, p := range parts {
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return ID{}, false
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return ID{}, false
		}
		nums[i] = n
	}
	return ID{Ms: nums[0], Seq: nums[1]}, true
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{
		"0-0", "1-2", "123", "1732270000000-3", maxU64 + "-" + maxU64,
		"", "-", "1-", "-1", "1--2", "+1-2", " 1-2", "1-2 ", "1.5-2",
		"18446744073709551616-0", "007-08", "\u0661-\u0662", "1-2-3",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if b, berr := ParseIDBytes([]byte(s)); b != id || (berr == nil) != (err == nil) {
			t.Fatalf("ParseIDBytes(%q) = %v, %v; ParseID gives %v, %v", s, b, berr, id, err)
		}
		want, refOK := refParseID(s)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("ParseID(%q) error %v does not wrap ErrBadCursor", s, err)
			}
			if id != (ID{}) {
				t.Errorf("ParseID(%q) returned %v with an error", s, id)
			}
			// Every canonical id (as String writes it) must be accepted.
			if refOK && (want.String() == s || strconv.FormatUint(want.Ms, 10) == s) {
				t.Fatalf("ParseID(%q) rejected a canonical id: %v", s, err)
			}
			return
		}
		if !refOK {
			t.Fatalf("ParseID(%q) = %v, but it is not <ms>[-<seq>] of decimal digits", s, id)
		}
		if id != want {
			t.Fatalf("ParseID(%q) = %v, want %v", s, id, want)
		}
		text := id.String()
		back, err := ParseID(text)
		if err != nil {
			t.Fatalf("ParseID(%q) (from %q): %v", text, s, err)
		}
		if back != id || back.Compare(id) != 0 {
			t.Fatalf("ParseID(%q) = %v, want %v (round trip of %q)", text, back, id, s)
		}
		if got := string(id.AppendTo(nil)); got != text {
			t.Fatalf("AppendTo = %q, String = %q", got, text)
		}
	})
}
