package edge

import (
	"fmt"
	"math"
	"strconv"
)

// ID identifies a message within its channel. It has the form of a Redis
// Stream entry id, "<ms>-<seq>": the milliseconds since the Unix epoch when
// the message was stored and a sequence number within that millisecond. Ids
// are strictly increasing within a channel. The zero ID ("0-0") sorts before
// every message.
type ID struct {
	Ms  uint64
	Seq uint64
}

// ParseID parses "<ms>-<seq>" (or "<ms>", meaning "<ms>-0"). It returns
// ErrBadCursor for anything else.
func ParseID(s string) (ID, error) {
	if id, ok := parseID(s); ok {
		return id, nil
	}
	return ID{}, badID(s)
}

// ParseIDBytes is ParseID for an id in a byte slice, such as a reply read
// into a buffer. It allocates only for its error.
func ParseIDBytes(b []byte) (ID, error) {
	if id, ok := parseID(b); ok {
		return id, nil
	}
	return ID{}, badID(string(b))
}

func badID(s string) error {
	return fmt.Errorf("%w: %q is not an id of the form <ms>-<seq>", ErrBadCursor, Clip(s))
}

func parseID[T string | []byte](s T) (ID, bool) {
	if len(s) == 0 || len(s) > 41 {
		return ID{}, false
	}
	msPart, seqPart, hasSeq := s, s[:0], false
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			msPart, seqPart, hasSeq = s[:i], s[i+1:], true
			break
		}
	}
	ms, ok := parseDecimal(msPart)
	if !ok {
		return ID{}, false
	}
	var seq uint64
	if hasSeq {
		if seq, ok = parseDecimal(seqPart); !ok {
			return ID{}, false
		}
	}
	return ID{Ms: ms, Seq: seq}, true
}

// parseDecimal accepts 1 to 20 ASCII digits (no sign, no spaces) whose
// value fits in 64 bits.
func parseDecimal[T string | []byte](s T) (uint64, bool) {
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// String returns "<ms>-<seq>".
func (id ID) String() string {
	return string(id.AppendTo(make([]byte, 0, 24)))
}

// AppendTo appends "<ms>-<seq>" to b.
func (id ID) AppendTo(b []byte) []byte {
	b = strconv.AppendUint(b, id.Ms, 10)
	b = append(b, '-')
	return strconv.AppendUint(b, id.Seq, 10)
}

// Compare returns -1, 0 or +1 as id sorts before, equal to or after o.
func (id ID) Compare(o ID) int {
	switch {
	case id.Ms < o.Ms:
		return -1
	case id.Ms > o.Ms:
		return 1
	case id.Seq < o.Seq:
		return -1
	case id.Seq > o.Seq:
		return 1
	}
	return 0
}

// Less reports whether id sorts before o.
func (id ID) Less(o ID) bool { return id.Compare(o) < 0 }

// IsZero reports whether id is "0-0".
func (id ID) IsZero() bool { return id == ID{} }

// Next returns the id that a store assigns after id at time nowMs: nowMs-0
// when the clock has moved past id, else id's millisecond with the next
// sequence number (as Redis does for XADD with "*").
func (id ID) Next(nowMs uint64) ID {
	switch {
	case nowMs > id.Ms:
		return ID{Ms: nowMs}
	case id.Seq == math.MaxUint64:
		return ID{Ms: id.Ms + 1}
	}
	return ID{Ms: id.Ms, Seq: id.Seq + 1}
}
