package main

import (
	"bytes"
	"strconv"
)

// minSize is the smallest --size: room for the largest header.
const minSize = 48

// appendPayload appends a payload of size bytes (more if the header does
// not fit): "seq=<seq> t=<sent> " padded with 'x'.
func appendPayload(b []byte, seq uint64, sent int64, size int) []byte {
	start := len(b)
	b = append(b, "seq="...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, " t="...)
	b = strconv.AppendInt(b, sent, 10)
	b = append(b, ' ')
	for len(b)-start < size {
		b = append(b, 'x')
	}
	return b
}

// parsePayload reads the sequence number and send time at the start of a
// payload made by appendPayload, or by appendDashboard (as is, or escaped
// in a JSON string).
func parsePayload(p []byte) (seq uint64, sent int64, ok bool) {
	if len(p) > 0 && p[0] == '{' {
		return parseDashboard(p)
	}
	rest, found := bytes.CutPrefix(p, []byte("seq="))
	if !found {
		return 0, 0, false
	}
	seq, rest, ok = cutUint(rest)
	if !ok {
		return 0, 0, false
	}
	if rest, found = bytes.CutPrefix(rest, []byte(" t=")); !found {
		return 0, 0, false
	}
	t, _, ok := cutUint(rest)
	if !ok || t > 1<<63-1 {
		return 0, 0, false
	}
	return seq, int64(t), true
}

// cutUint parses the decimal digits at the start of b (at most 19).
func cutUint(b []byte) (n uint64, rest []byte, ok bool) {
	i := 0
	for ; i < len(b) && i < 19 && '0' <= b[i] && b[i] <= '9'; i++ {
		n = n*10 + uint64(b[i]-'0')
	}
	return n, b[i:], i > 0
}
