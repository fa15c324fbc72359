package main

// seqWindow is how far apart (in sequence numbers of one channel) a
// subscriber may receive messages and still have duplicates told apart
// from first deliveries.
const seqWindow = 4096

// seqTracker counts the distinct and the repeated sequence numbers one
// subscriber receives on one channel, in fixed memory (512 bytes). It is
// used by one goroutine at a time.
//
// Numbers may arrive in any order within seqWindow of the highest seen;
// lost messages are those published and never counted as distinct
// (published − unique), so a gap needs no bookkeeping.
type seqTracker struct {
	base   uint64                 // every number below base is accounted for
	bits   [seqWindow / 64]uint64 // seen numbers in [base, base+seqWindow), at n % seqWindow
	unique int64                  // distinct numbers seen
	dups   int64                  // numbers seen again
}

// observe records number n and reports whether it was seen for the first
// time.
func (t *seqTracker) observe(n uint64) bool {
	if n < t.base {
		t.dups++
		return false
	}
	if n >= t.base+seqWindow {
		t.slide(n - seqWindow + 1)
	}
	w, b := (n%seqWindow)/64, n%64
	if t.bits[w]&(1<<b) != 0 {
		t.dups++
		return false
	}
	t.bits[w] |= 1 << b
	t.unique++
	return true
}

// slide moves the window to start at base, forgetting the numbers below.
func (t *seqTracker) slide(base uint64) {
	if base-t.base >= seqWindow {
		clear(t.bits[:])
		t.base = base
		return
	}
	for n := t.base; n < base; n++ {
		t.bits[(n%seqWindow)/64] &^= 1 << (n % 64)
	}
	t.base = base
}

// lost returns how many of the published messages t never saw.
func (t *seqTracker) lost(published int64) int64 {
	return max(published-t.unique, 0)
}

// seen reports whether number n was seen, as far as the window still
// tells: numbers below it count as not seen.
func (t *seqTracker) seen(n uint64) bool {
	if n < t.base || n >= t.base+seqWindow {
		return false
	}
	return t.bits[(n%seqWindow)/64]&(1<<(n%64)) != 0
}

// missedLast returns how many of the last keys numbers below published
// (the last message of each of keys conflation keys, published
// round-robin) t never saw. keys must be below seqWindow.
func (t *seqTracker) missedLast(published int64, keys int) int64 {
	var missed int64
	for n := max(published-int64(keys), 0); n < published; n++ {
		if !t.seen(uint64(n)) {
			missed++
		}
	}
	return missed
}
