package main

import "bytes"

// idTracker counts the distinct and the repeated message ids one
// subscriber receives on one channel when the payloads cannot tell
// (--delta: a delta frame's data is a difference, not a payload). The
// edge delivers a channel's ids in increasing order, so an id not above
// the last is a repeat. It is used by one goroutine at a time.
type idTracker struct {
	lastMs, lastSeq uint64
	unique          int64 // ids above every earlier one
	dups            int64 // ids not above the last
}

// observe records the id "<ms>-<seq>" and returns its milliseconds and
// whether it is a first delivery; ok is false for a malformed id, which
// it does not record.
func (t *idTracker) observe(id []byte) (ms uint64, first, ok bool) {
	ms, rest, ok := cutUint(id)
	if !ok {
		return 0, false, false
	}
	var seq uint64
	if len(rest) > 0 {
		if rest[0] != '-' {
			return 0, false, false
		}
		if seq, rest, ok = cutUint(rest[1:]); !ok || len(rest) > 0 {
			return 0, false, false
		}
	}
	if t.unique > 0 && (ms < t.lastMs || ms == t.lastMs && seq <= t.lastSeq) {
		t.dups++
		return ms, false, true
	}
	t.lastMs, t.lastSeq = ms, seq
	t.unique++
	return ms, true, true
}

// Fields of the message objects scanObjects reads.
var deltaField = []byte(`"delta":"`)

// scanObjects calls fn with the id, the data and whether it is a delta
// of every message object of a WebSocket frame or long-poll answer, and
// returns how many it found. An object runs from its "id" field to the
// next one; control objects without data (the subscribed frame) are
// skipped. Data and ids of other fields cannot hold an unescaped quote,
// so the fields are found by their quoted names.
func scanObjects(frame []byte, fn func(id, data []byte, delta bool)) int {
	n := 0
	for {
		i := bytes.Index(frame, idField)
		if i < 0 {
			return n
		}
		frame = frame[i+len(idField):]
		j := bytes.IndexByte(frame, '"')
		if j < 0 {
			return n
		}
		id := frame[:j]
		frame = frame[j+1:]
		obj := frame
		if k := bytes.Index(frame, idField); k >= 0 {
			obj = frame[:k]
		}
		d := bytes.Index(obj, dataField)
		if d < 0 {
			continue
		}
		data := obj[d+len(dataField):]
		e := stringEnd(data)
		if e < 0 {
			return n
		}
		delta := bytes.Contains(obj[:d], deltaField) || bytes.Contains(data[e:], deltaField)
		fn(id, data[:e], delta)
		n++
		frame = frame[min(len(obj), d+len(dataField)+e+1):]
	}
}
