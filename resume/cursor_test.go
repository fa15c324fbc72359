package resume

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/edgeworks/edge/edge"
)

// composite writes raw ("chan=ms-seq,…") as a composite cursor, the way the
// contract describes it, independently of Cursor.AppendTo.
func composite(raw string) string {
	return "m." + base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// pos is one channel's expected position.
type pos struct {
	channel string
	id      edge.ID
}

// checkPositions fails unless c holds exactly want, and no position for
// any channel in absent.
func checkPositions(t *testing.T, c *Cursor, want []pos, absent []string) {
	t.Helper()
	if c.Len() != len(want) {
		t.Errorf("Len() = %d, want %d", c.Len(), len(want))
	}
	for _, p := range want {
		got, ok := c.Get(p.channel)
		if !ok {
			t.Errorf("Get(%q) has no position, want %v", p.channel, p.id)
			continue
		}
		if got != p.id {
			t.Errorf("Get(%q) = %v, want %v", p.channel, got, p.id)
		}
	}
	for _, ch := range absent {
		if got, ok := c.Get(ch); ok {
			t.Errorf("Get(%q) = %v, want no position", ch, got)
		}
	}
}

// urlSafe reports whether s consists only of [A-Za-z0-9._-].
func urlSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func TestCursorSetGetDelete(t *testing.T) {
	a, b, c := edge.ID{Ms: 1, Seq: 2}, edge.ID{Ms: 3, Seq: 4}, edge.ID{Ms: 5, Seq: 6}
	tests := []struct {
		name   string
		build  func(*Cursor)
		want   []pos
		absent []string
		str    string // the String() it must give; "" to not check
	}{
		{
			name:   "zero cursor is empty",
			build:  func(*Cursor) {},
			absent: []string{"a", ""},
		},
		{
			name:   "one channel is a bare id",
			build:  func(cur *Cursor) { cur.Set("a", a) },
			want:   []pos{{"a", a}},
			absent: []string{"b"},
			str:    "1-2",
		},
		{
			name:  "channels keep the order they were set in",
			build: func(cur *Cursor) { cur.Set("b", b); cur.Set("a", a) },
			want:  []pos{{"a", a}, {"b", b}},
			str:   composite("b=3-4,a=1-2"),
		},
		{
			name:  "set again updates in place",
			build: func(cur *Cursor) { cur.Set("a", a); cur.Set("b", b); cur.Set("a", c) },
			want:  []pos{{"a", c}, {"b", b}},
			str:   composite("a=5-6,b=3-4"),
		},
		{
			name:  "set may move a position back",
			build: func(cur *Cursor) { cur.Set("a", c); cur.Set("a", edge.ID{}) },
			want:  []pos{{"a", edge.ID{}}},
			str:   "0-0",
		},
		{
			name:   "delete first",
			build:  func(cur *Cursor) { cur.Set("a", a); cur.Set("b", b); cur.Set("c", c); cur.Delete("a") },
			want:   []pos{{"b", b}, {"c", c}},
			absent: []string{"a"},
			str:    composite("b=3-4,c=5-6"),
		},
		{
			name:   "delete middle",
			build:  func(cur *Cursor) { cur.Set("a", a); cur.Set("b", b); cur.Set("c", c); cur.Delete("b") },
			want:   []pos{{"a", a}, {"c", c}},
			absent: []string{"b"},
			str:    composite("a=1-2,c=5-6"),
		},
		{
			name:   "delete last",
			build:  func(cur *Cursor) { cur.Set("a", a); cur.Set("b", b); cur.Set("c", c); cur.Delete("c") },
			want:   []pos{{"a", a}, {"b", b}},
			absent: []string{"c"},
			str:    composite("a=1-2,b=3-4"),
		},
		{
			name:  "delete a missing channel is a no-op",
			build: func(cur *Cursor) { cur.Set("a", a); cur.Set("b", b); cur.Delete("z") },
			want:  []pos{{"a", a}, {"b", b}},
			str:   composite("a=1-2,b=3-4"),
		},
		{
			name:   "delete down to one channel writes a bare id",
			build:  func(cur *Cursor) { cur.Set("a", a); cur.Set("b", b); cur.Delete("a") },
			want:   []pos{{"b", b}},
			absent: []string{"a"},
			str:    "3-4",
		},
		{
			name:   "delete everything",
			build:  func(cur *Cursor) { cur.Set("a", a); cur.Delete("a"); cur.Delete("a") },
			absent: []string{"a"},
		},
		{
			name:   "set after delete appends",
			build:  func(cur *Cursor) { cur.Set("a", a); cur.Set("b", b); cur.Delete("a"); cur.Set("a", c) },
			want:   []pos{{"a", c}, {"b", b}},
			absent: []string{"c"},
			str:    composite("b=3-4,a=5-6"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cur Cursor
			tt.build(&cur)
			checkPositions(t, &cur, tt.want, tt.absent)
			if tt.str != "" {
				if got := cur.String(); got != tt.str {
					t.Errorf("String() = %q, want %q", got, tt.str)
				}
			}
		})
	}
}

func TestCursorString(t *testing.T) {
	maxID := edge.ID{Ms: math.MaxUint64, Seq: math.MaxUint64}
	tests := []struct {
		name string
		set  []pos
		want string
	}{
		{
			name: "one channel is the message id",
			set:  []pos{{"news", edge.ID{Ms: 1732270000000, Seq: 3}}},
			want: "1732270000000-3",
		},
		{
			name: "one channel at zero",
			set:  []pos{{"news", edge.ID{}}},
			want: "0-0",
		},
		{
			name: "two channels",
			set:  []pos{{"a", edge.ID{Ms: 1, Seq: 2}}, {"b", edge.ID{Ms: 3, Seq: 4}}},
			want: "m.YT0xLTIsYj0zLTQ",
		},
		{
			name: "realistic names",
			set:  []pos{{"news", edge.ID{Ms: 1732270000000, Seq: 3}}, {"chat/room:1", edge.ID{Ms: 1732270000001}}},
			want: "m.bmV3cz0xNzMyMjcwMDAwMDAwLTMsY2hhdC9yb29tOjE9MTczMjI3MDAwMDAwMS0w",
		},
		{
			name: "max ids",
			set:  []pos{{"a", maxID}, {"b", maxID}},
			want: composite("a=18446744073709551615-18446744073709551615,b=18446744073709551615-18446744073709551615"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Cursor
			for _, p := range tt.set {
				c.Set(p.channel, p.id)
			}
			if got := c.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got := string(c.AppendTo([]byte("id: "))); got != "id: "+tt.want {
				t.Errorf("AppendTo(\"id: \") = %q, want %q", got, "id: "+tt.want)
			}
			if !urlSafe(tt.want) || url.QueryEscape(tt.want) != tt.want {
				t.Errorf("String() = %q is not URL-safe", tt.want)
			}
			channels := make([]string, len(tt.set))
			for i, p := range tt.set {
				channels[i] = p.channel
			}
			back, err := ParseCursor(tt.want, channels)
			if err != nil {
				t.Fatalf("ParseCursor(%q, %q): %v", tt.want, channels, err)
			}
			checkPositions(t, &back, tt.set, nil)
		})
	}
}

func TestCursorCompositeIsURLSafe(t *testing.T) {
	tests := []struct {
		name     string
		channels []string
	}{
		{name: "every allowed byte", channels: []string{"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "0123456789", "_-.:@/"}},
		{name: "slashes and colons", channels: []string{"/", ":", "@", "//::@@"}},
		{name: "long names", channels: []string{strings.Repeat("/", edge.MaxChannelLen), strings.Repeat("z", edge.MaxChannelLen)}},
		{name: "many channels", channels: func() (chs []string) {
			for i := range 100 {
				chs = append(chs, "ch:"+strings.Repeat("@", i%7)+string(rune('a'+i%26))+string(rune('A'+i/26)))
			}
			return chs
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Cursor
			var want []pos
			for i, ch := range tt.channels {
				id := edge.ID{Ms: uint64(i) * 977, Seq: math.MaxUint64 - uint64(i)}
				c.Set(ch, id)
				want = append(want, pos{ch, id})
			}
			s := c.String()
			if len(tt.channels) >= 2 && !strings.HasPrefix(s, "m.") {
				t.Errorf("String() = %q, want the composite form", s)
			}
			if !urlSafe(s) {
				t.Errorf("String() = %q has bytes outside [A-Za-z0-9._-]", s)
			}
			back, err := ParseCursor(s, tt.channels)
			if err != nil {
				t.Fatalf("ParseCursor(String()): %v", err)
			}
			checkPositions(t, &back, want, nil)
		})
	}
}

func TestParseCursor(t *testing.T) {
	a12, b34 := edge.ID{Ms: 1, Seq: 2}, edge.ID{Ms: 3, Seq: 4}
	tests := []struct {
		name     string
		in       string
		channels []string
		want     []pos
		absent   []string
		wantErr  bool
	}{
		{name: "bare id for one channel", in: "1732270000000-3", channels: []string{"news"}, want: []pos{{"news", edge.ID{Ms: 1732270000000, Seq: 3}}}},
		{name: "bare ms for one channel", in: "123", channels: []string{"news"}, want: []pos{{"news", edge.ID{Ms: 123}}}},
		{name: "bare zero id", in: "0-0", channels: []string{"news"}, want: []pos{{"news", edge.ID{}}}},
		{name: "composite for two channels", in: composite("a=1-2,b=3-4"), channels: []string{"a", "b"}, want: []pos{{"a", a12}, {"b", b34}}},
		{name: "composite in another order than the subscription", in: composite("b=3-4,a=1-2"), channels: []string{"a", "b"}, want: []pos{{"a", a12}, {"b", b34}}},
		{name: "composite for a one-channel subscription", in: composite("a=1-2,b=3-4"), channels: []string{"b"}, want: []pos{{"b", b34}}, absent: []string{"a"}},
		{name: "composite of one entry", in: composite("a=1-2"), channels: []string{"a"}, want: []pos{{"a", a12}}},
		{name: "composite ms-only id", in: composite("a=7,b=3-4"), channels: []string{"a", "b"}, want: []pos{{"a", edge.ID{Ms: 7}}, {"b", b34}}},
		{name: "channels absent from the subscription are dropped", in: composite("a=1-2,b=3-4,c=5-6"), channels: []string{"a", "c"}, want: []pos{{"a", a12}, {"c", edge.ID{Ms: 5, Seq: 6}}}, absent: []string{"b"}},
		{name: "subscribed channels absent from the cursor have no position", in: composite("a=1-2,b=3-4"), channels: []string{"a", "b", "z"}, want: []pos{{"a", a12}, {"b", b34}}, absent: []string{"z"}},
		{name: "no channel in common", in: composite("a=1-2,b=3-4"), channels: []string{"x", "y"}, absent: []string{"a", "b", "x", "y"}},
		{name: "no subscription", in: composite("a=1-2,b=3-4"), channels: nil, absent: []string{"a", "b"}},
		{name: "every allowed byte in names", in: composite("AZaz09_-.:@/=1-2,x=3-4"), channels: []string{"x", "AZaz09_-.:@/"}, want: []pos{{"AZaz09_-.:@/", a12}, {"x", b34}}},

		{name: "bare id with two channels", in: "1-2", channels: []string{"a", "b"}, wantErr: true},
		{name: "bare id with no channel", in: "1-2", channels: nil, wantErr: true},
		{name: "empty", in: "", channels: []string{"a"}, wantErr: true},
		{name: "bad bare id", in: "1-x", channels: []string{"a"}, wantErr: true},
		{name: "bare id with spaces", in: " 1-2", channels: []string{"a"}, wantErr: true},
		{name: "prefix is case-sensitive", in: "M." + composite("a=1-2")[2:], channels: []string{"a"}, wantErr: true},
		{name: "duplicate channel", in: composite("a=1-2,a=3-4"), channels: []string{"a"}, wantErr: true},
		{name: "duplicate channel not subscribed", in: composite("a=1-2,b=3-4,b=3-4"), channels: []string{"a"}, wantErr: true},
		{name: "not base64", in: "m.!!!!", channels: []string{"a", "b"}, wantErr: true},
		{name: "padded base64", in: "m." + base64.URLEncoding.EncodeToString([]byte("a=1-2,b=3-4")), channels: []string{"a", "b"}, wantErr: true},
		{name: "standard base64 alphabet", in: "m.YT0x/LTI+", channels: []string{"a", "b"}, wantErr: true},
		{name: "truncated base64", in: "m.Y", channels: []string{"a", "b"}, wantErr: true},
		{name: "base64 with a space", in: "m.YT0x LTIsYj0zLTQ", channels: []string{"a", "b"}, wantErr: true},
		{name: "bad id inside", in: composite("a=1-2,b=x"), channels: []string{"a", "b"}, wantErr: true},
		{name: "bad id in an unsubscribed channel", in: composite("a=1-2,b=1.5-2"), channels: []string{"a"}, wantErr: true},
		{name: "empty id inside", in: composite("a=1-2,b="), channels: []string{"a", "b"}, wantErr: true},
		{name: "id overflow inside", in: composite("a=18446744073709551616-0,b=3-4"), channels: []string{"a", "b"}, wantErr: true},
		{name: "entry without equals", in: composite("a=1-2,b"), channels: []string{"a", "b"}, wantErr: true},
		{name: "two equals", in: composite("a=1-2=3,b=3-4"), channels: []string{"a", "b"}, wantErr: true},
		{name: "invalid channel name inside", in: composite("a b=1-2,c=3-4"), channels: []string{"a b", "c"}, wantErr: true},
		{name: "empty channel name inside", in: composite("=1-2,c=3-4"), channels: []string{"", "c"}, wantErr: true},
		{name: "non-ASCII channel name inside", in: composite("caf\u00e9=1-2,c=3-4"), channels: []string{"c"}, wantErr: true},
		{name: "channel name too long inside", in: composite(strings.Repeat("c", edge.MaxChannelLen+1) + "=1-2,d=3-4"), channels: []string{"d"}, wantErr: true},
		{name: "empty composite", in: "m.", channels: []string{"a", "b"}, wantErr: true},
		{name: "trailing comma", in: composite("a=1-2,b=3-4,"), channels: []string{"a", "b"}, wantErr: true},
		{name: "leading comma", in: composite(",a=1-2,b=3-4"), channels: []string{"a", "b"}, wantErr: true},
		{name: "only a comma", in: composite(","), channels: []string{"a", "b"}, wantErr: true},
		{name: "too long composite", in: "m." + strings.Repeat("A", MaxCursorLen), channels: []string{"a", "b"}, wantErr: true},
		{name: "too long bare", in: strings.Repeat("1", MaxCursorLen+1), channels: []string{"a"}, wantErr: true},
		{name: "too long but otherwise valid", in: composite(manyEntries(MaxCursorLen / 8)), channels: []string{"c0", "c1"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCursor(tt.in, tt.channels)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseCursor(%q, %q) = %q, want an error", edge.Clip(tt.in), tt.channels, got.String())
				}
				if !errors.Is(err, edge.ErrBadCursor) {
					t.Errorf("ParseCursor(%q, %q) error %v does not wrap edge.ErrBadCursor", edge.Clip(tt.in), tt.channels, err)
				}
				if len(err.Error()) > 512 {
					t.Errorf("error message is %d bytes long; untrusted input must be clipped", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCursor(%q, %q): %v", tt.in, tt.channels, err)
			}
			checkPositions(t, &got, tt.want, tt.absent)
		})
	}
}

// manyEntries returns the raw text of a composite cursor with n distinct
// channels.
func manyEntries(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "c%d=%d-0", i, i)
	}
	return b.String()
}

// heldChannels returns, in subscription order and without repeats, the
// channels of subscription that c has a position in.
func heldChannels(c *Cursor, subscription []string) []string {
	var held []string
	for _, ch := range subscription {
		if _, ok := c.Get(ch); ok && !slices.Contains(held, ch) {
			held = append(held, ch)
		}
	}
	return held
}

// samePositions fails unless a and b hold the same position for every
// channel in channels, and the same number of positions.
func samePositions(t *testing.T, a, b *Cursor, channels []string) {
	t.Helper()
	if a.Len() != b.Len() {
		t.Fatalf("Len() = %d after the round trip, want %d", b.Len(), a.Len())
	}
	for _, ch := range channels {
		ida, oka := a.Get(ch)
		idb, okb := b.Get(ch)
		if ida != idb || oka != okb {
			t.Fatalf("Get(%q) = %v, %t after the round trip, want %v, %t", ch, idb, okb, ida, oka)
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add("1-2", "a")
	f.Add("123", "news")
	f.Add("1-2", "a,b")
	f.Add(composite("a=1-2,b=3-4"), "a,b")
	f.Add(composite("a=1-2,b=3-4"), "a,b,c")
	f.Add(composite("a=1-2,b=3-4,c=5-6"), "c")
	f.Add(composite("a=1-2,a=3-4"), "a")
	f.Add(composite("a b=1-2"), "a b")
	f.Add(composite(""), "a,b")
	f.Add("m.!!", "a,b")
	f.Add("m.YT0xLTIsYj0zLTQ=", "a,b")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, s, list string) {
		var channels []string
		if list != "" {
			channels = strings.Split(list, ",")
		}
		if len(channels) > 32 {
			channels = channels[:32]
		}
		c, err := ParseCursor(s, channels)
		if err != nil {
			if !errors.Is(err, edge.ErrBadCursor) {
				t.Fatalf("ParseCursor(%q, %q) error %v does not wrap edge.ErrBadCursor", s, channels, err)
			}
			if c.Len() != 0 {
				t.Fatalf("ParseCursor(%q, %q) failed but returned %d positions", s, channels, c.Len())
			}
			return
		}
		if len(s) > MaxCursorLen {
			t.Fatalf("ParseCursor accepted a cursor of %d bytes", len(s))
		}
		held := heldChannels(&c, channels)
		if c.Len() != len(held) {
			t.Fatalf("ParseCursor(%q, %q) has %d positions but only %q are subscribed", s, channels, c.Len(), held)
		}
		if !strings.HasPrefix(s, "m.") && (len(channels) != 1 || c.Len() != 1) {
			t.Fatalf("ParseCursor(%q, %q) accepted a bare id for %d channels", s, channels, len(channels))
		}
		if c.Len() == 0 {
			return
		}
		again := c.String()
		if !urlSafe(again) {
			t.Fatalf("String() = %q is not URL-safe", again)
		}
		back, err := ParseCursor(again, held)
		if err != nil {
			t.Fatalf("ParseCursor(%q, %q) (re-encoded from %q): %v", again, held, s, err)
		}
		samePositions(t, &c, &back, channels)
		// A composite needs no more of the subscription than its channels.
		if c.Len() >= 2 {
			back, err := ParseCursor(again, channels)
			if err != nil {
				t.Fatalf("ParseCursor(%q, %q) (re-encoded from %q): %v", again, channels, s, err)
			}
			samePositions(t, &c, &back, channels)
		}
	})
}

// fuzzAlphabet maps fuzz bytes onto the channel-name alphabet.
const fuzzAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:@/"

// fuzzChannel turns arbitrary bytes into a valid channel name, or "".
func fuzzChannel(s string) string {
	if len(s) > edge.MaxChannelLen {
		s = s[:edge.MaxChannelLen]
	}
	b := make([]byte, len(s))
	for i := 0; i < len(s); i++ {
		b[i] = fuzzAlphabet[int(s[i])%len(fuzzAlphabet)]
	}
	return string(b)
}

func FuzzCursorRoundTrip(f *testing.F) {
	u64 := func(vs ...uint64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
		return b
	}
	f.Add("news", u64(1732270000000, 3), "")
	f.Add("a,b", u64(1, 2, 3, 4), "")
	f.Add("a,b,a", u64(1, 2, 3, 4, 5, 6), "")
	f.Add("a,b,c", u64(1, 2, 3, 4, 5, 6), "b")
	f.Add("a,b", u64(1, 2, 3, 4), "a")
	f.Add("a,,b,"+strings.Repeat("z", 300), u64(math.MaxUint64, math.MaxUint64), "q")
	f.Fuzz(func(t *testing.T, names string, ids []byte, del string) {
		var c Cursor
		var order []string
		want := map[string]edge.ID{}
		for i, part := range strings.Split(names, ",") {
			ch := fuzzChannel(part)
			if ch == "" {
				continue
			}
			id := edge.ID{Ms: uint64(i) * 1000, Seq: uint64(len(ch))}
			if len(ids) >= 16 {
				id = edge.ID{Ms: binary.LittleEndian.Uint64(ids), Seq: binary.LittleEndian.Uint64(ids[8:])}
				ids = ids[16:]
			}
			c.Set(ch, id)
			if _, ok := want[ch]; !ok {
				order = append(order, ch)
			}
			want[ch] = id
		}
		if d := fuzzChannel(del); d != "" {
			c.Delete(d)
			delete(want, d)
			order = slices.DeleteFunc(order, func(ch string) bool { return ch == d })
		}
		if c.Len() != len(want) {
			t.Fatalf("Len() = %d, want %d", c.Len(), len(want))
		}
		for ch, id := range want {
			if got, ok := c.Get(ch); !ok || got != id {
				t.Fatalf("Get(%q) = %v, %t; want %v", ch, got, ok, id)
			}
		}
		if c.Len() == 0 {
			return
		}
		s := c.String()
		if got := string(c.AppendTo([]byte("x"))); got != "x"+s {
			t.Fatalf("AppendTo(\"x\") = %q, want %q", got, "x"+s)
		}
		if !urlSafe(s) {
			t.Fatalf("String() = %q is not URL-safe", s)
		}
		if c.Len() == 1 && s != want[order[0]].String() {
			t.Fatalf("String() = %q for one channel, want the bare id %q", s, want[order[0]].String())
		}
		back, err := ParseCursor(s, order)
		if err != nil {
			if len(s) > MaxCursorLen && errors.Is(err, edge.ErrBadCursor) {
				return // too many channels for one cursor
			}
			t.Fatalf("ParseCursor(%q, %q): %v", s, order, err)
		}
		samePositions(t, &c, &back, order)
		if c.Len() >= 2 {
			// The subscription's order does not matter, and a channel new to
			// the subscription starts without a position.
			extra := fuzzChannel(names) + "@new"
			if len(extra) > edge.MaxChannelLen {
				extra = "@new"
			}
			sub := slices.Clone(order)
			slices.Reverse(sub)
			if _, ok := want[extra]; !ok {
				sub = append(sub, extra)
			}
			back, err := ParseCursor(s, sub)
			if err != nil {
				t.Fatalf("ParseCursor(%q, %q): %v", s, sub, err)
			}
			samePositions(t, &c, &back, sub)
		}
	})
}
