package edge

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/centrifugal/fdelta"
)

// deltaFrame returns the frame of target whose base is base.
func deltaFrame(base, target []byte) *Frame {
	f := NewFrame(Message{Channel: "c", ID: ID{Ms: 2}, Data: target})
	f.delta = &frameDelta{base: ID{Ms: 1}, data: base}
	return f
}

// checkDelta checks that the frame of target on base is a patch that
// turns base into target byte for byte and is smaller than target, or no
// patch when it could not be smaller.
func checkDelta(t *testing.T, base, target []byte) {
	t.Helper()
	f := deltaFrame(base, target)
	v := f.Delta()
	if v != f.Delta() {
		t.Fatal("Delta made a second view of one frame")
	}
	if v == nil {
		if p := fdelta.Create(base, target); len(p) < len(target) {
			t.Fatalf("no delta, but a %d-byte patch of a %d-byte payload exists", len(p), len(target))
		}
		return
	}
	if b, ok := v.Base(); !ok || b != (ID{Ms: 1}) {
		t.Fatalf("view's Base = %v, %v; want 1-0", b, ok)
	}
	if v.ID != f.ID || v.Channel != f.Channel || len(v.Data) >= len(target) {
		t.Fatalf("view %v/%v with %d bytes for a %d-byte payload", v.Channel, v.ID, len(v.Data), len(target))
	}
	got, err := fdelta.Apply(base, v.Data)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !bytes.Equal(got, target) {
		t.Fatalf("Apply = %q; want %q", got, target)
	}
}

func TestDeltaRoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	edit := func(b []byte, n int) []byte {
		b = bytes.Clone(b)
		for range n {
			b[rnd.IntN(len(b))] = byte(rnd.Uint32())
		}
		return b
	}
	dash := dashboardState(0)
	bin := random(4096)
	large := random(DeltaMaxPayload)
	for _, tc := range []struct {
		name         string
		base, target []byte
		wantPatch    bool
	}{
		{"dashboard", dash, dashboardState(1), true},
		{"utf8", []byte(strings.Repeat("précis — ünïcode ✓ 日本語 ", 40)), []byte(strings.Repeat("précis — ünïcode ✓ 日本語 ", 39) + "précis — ÜNÏCODE ✓ 日本語 "), true},
		{"binary", bin, edit(bin, 8), true},
		{"random", random(1000), random(1000), false},
		{"empty target", dash, nil, false},
		{"empty base", nil, dash, false},
		{"both empty", nil, nil, false},
		{"large", large, edit(large, 32), true},
		{"same", dash, dash, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkDelta(t, tc.base, tc.target)
			if got := deltaFrame(tc.base, tc.target).Delta() != nil; got != tc.wantPatch {
				t.Errorf("patch sent = %v; want %v", got, tc.wantPatch)
			}
		})
	}
}

func FuzzDelta(f *testing.F) {
	f.Add(dashboardState(0), dashboardState(1))
	f.Add([]byte("hello world"), []byte("hello there world"))
	f.Add([]byte{}, []byte{0xff, 0, 1})
	f.Fuzz(func(t *testing.T, base, target []byte) {
		checkDelta(t, base, target)
	})
}

// dashboardState is the dashboard payload of the measurements: about 1
// KiB of JSON state, of which a few values change from one update to the
// next.
func dashboardState(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"widgets":[`)
	for i := range 16 {
		if i > 0 {
			b.WriteByte(',')
		}
		v := i * 7
		if i%5 == n%5 {
			v += n
		}
		b.WriteString(`{"id":"widget-`)
		b.WriteString(string(rune('a' + i)))
		b.WriteString(`","label":"Requests per second","value":`)
		b.WriteString(strconv.Itoa(v))
		b.WriteString(`,"unit":"rps"}`)
	}
	b.WriteString(`],"updated":`)
	b.WriteString(strconv.Itoa(1732270000000 + n*50))
	b.WriteString(`}`)
	return []byte(b.String())
}

func TestDeltaChannel(t *testing.T) {
	msg := func(key string, ms uint64, size int) *Frame {
		return NewFrame(Message{Channel: "c", ID: ID{Ms: ms}, Key: key, Data: bytes.Repeat([]byte{'x'}, size)})
	}
	t.Run("bases per key", func(t *testing.T) {
		dc := newDeltaChannel()
		next := func(f *Frame) *frameDelta { dc.record(f); return f.delta }
		for i, tc := range []struct {
			key  string
			base uint64 // 0: none
		}{{"a", 0}, {"b", 0}, {"a", 1}, {"a", 3}, {"b", 2}, {"", 0}, {"", 6}} {
			fd := next(msg(tc.key, uint64(i+1), 10))
			switch {
			case tc.base == 0 && fd != nil:
				t.Errorf("message %d of key %q has base %v; want none", i+1, tc.key, fd.base)
			case tc.base != 0 && (fd == nil || fd.base != ID{Ms: tc.base}):
				t.Errorf("message %d of key %q has base %v; want %d", i+1, tc.key, fd, tc.base)
			}
		}
	})
	t.Run("every DeltaResync-th is full", func(t *testing.T) {
		dc := newDeltaChannel()
		next := func(f *Frame) *frameDelta { dc.record(f); return f.delta }
		var full []int
		for i := range 3 * DeltaResync {
			if next(msg("k", uint64(i+1), 10)) == nil {
				full = append(full, i)
			}
		}
		want := []int{0, DeltaResync, 2 * DeltaResync}
		if !slices.Equal(full, want) {
			t.Errorf("full messages %v; want %v", full, want)
		}
	})
	t.Run("an id not after the previous has no base", func(t *testing.T) {
		dc := newDeltaChannel()
		next := func(f *Frame) *frameDelta { dc.record(f); return f.delta }
		next(msg("k", 5, 10))
		if fd := next(msg("k", 4, 10)); fd != nil {
			t.Errorf("base %v for an older id", fd.base)
		}
	})
	t.Run("keys are bounded, the stalest forgotten", func(t *testing.T) {
		dc := newDeltaChannel()
		next := func(f *Frame) *frameDelta { dc.record(f); return f.delta }
		for i := range DeltaMaxKeys + 1 {
			next(msg(strconv.Itoa(i), uint64(i+1), 1))
		}
		if n := dc.order.Len(); n != DeltaMaxKeys || len(dc.keys) != n {
			t.Fatalf("%d keys kept (%d in the map); want %d", n, len(dc.keys), DeltaMaxKeys)
		}
		if fd := next(msg("0", 1<<20, 1)); fd != nil {
			t.Error("the stalest key was kept")
		}
		if fd := next(msg(strconv.Itoa(DeltaMaxKeys), 1<<20+1, 1)); fd == nil {
			t.Error("the newest key was forgotten")
		}
	})
	t.Run("bytes are bounded", func(t *testing.T) {
		dc := newDeltaChannel()
		next := func(f *Frame) *frameDelta { dc.record(f); return f.delta }
		per := DeltaMaxPayload
		for i := range DeltaMaxBytes/per + 2 {
			next(msg(strconv.Itoa(i), uint64(i+1), per))
		}
		if dc.bytes > DeltaMaxBytes {
			t.Errorf("%d bytes kept; at most %d", dc.bytes, DeltaMaxBytes)
		}
		if fd := next(msg("0", 1<<20, per)); fd != nil {
			t.Error("the stalest key was kept")
		}
	})
	t.Run("a payload over DeltaMaxPayload is full and forgets its key", func(t *testing.T) {
		dc := newDeltaChannel()
		next := func(f *Frame) *frameDelta { dc.record(f); return f.delta }
		next(msg("k", 1, 10))
		if fd := next(msg("k", 2, DeltaMaxPayload+1)); fd != nil {
			t.Error("an oversized payload has a base")
		}
		if fd := next(msg("k", 3, 10)); fd != nil {
			t.Error("the message after an oversized one has a base")
		}
		if dc.bytes != 10 || len(dc.keys) != 1 {
			t.Errorf("%d bytes, %d keys kept; want 10, 1", dc.bytes, len(dc.keys))
		}
	})
}

// TestSubscriptionOut checks which frames a delta subscription sends as
// patches: only those whose base its client holds.
func TestSubscriptionOut(t *testing.T) {
	frame := func(key string, ms, base uint64) *Frame {
		f := NewFrame(Message{Channel: "c", ID: ID{Ms: ms}, Key: key, Data: dashboardState(int(ms))})
		if base != 0 {
			f.delta = &frameDelta{base: ID{Ms: base}, data: dashboardState(int(base))}
		}
		return f
	}
	type step struct {
		key       string
		ms, base  uint64
		wantDelta bool
	}
	for _, tc := range []struct {
		name     string
		off      bool
		conflate bool
		trust    uint64
		steps    []step
	}{
		{"first of each key full, then deltas", false, false, 0, []step{{"a", 1, 0, false}, {"a", 2, 1, true}, {"b", 3, 0, false}, {"a", 4, 2, true}, {"b", 5, 3, true}}},
		{"a base the client lacks is full", false, false, 0, []step{{"a", 2, 1, false}, {"a", 3, 2, true}, {"a", 5, 4, false}, {"a", 6, 5, true}}},
		{"trusted position", false, false, 10, []step{{"a", 11, 9, true}, {"b", 12, 11, false}, {"b", 13, 12, true}, {"c", 14, 10, true}}},
		{"off", true, false, 0, []step{{"a", 1, 0, false}, {"a", 2, 1, false}}},
		{"conflating gets whole messages", false, true, 0, []step{{"a", 1, 0, false}, {"a", 2, 1, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := &subscription{channel: "c", delta: !tc.off, trust: ID{Ms: tc.trust}}
			if tc.conflate {
				sub.cf = &conflater{every: MinConflate}
			}
			for _, st := range tc.steps {
				f := frame(st.key, st.ms, st.base)
				got := sub.out(f)
				if _, isDelta := got.Base(); isDelta != st.wantDelta {
					t.Errorf("message %d of %q (base %d): delta = %v; want %v", st.ms, st.key, st.base, isDelta, st.wantDelta)
				}
			}
		})
	}
	t.Run("held keys are bounded", func(t *testing.T) {
		sub := &subscription{channel: "c", delta: true}
		for i := range 2 * maxClientBases {
			sub.out(frame(strconv.Itoa(i), uint64(i+1), 0))
		}
		if len(sub.bases) != maxClientBases {
			t.Errorf("%d keys held; want %d", len(sub.bases), maxClientBases)
		}
	})
}
