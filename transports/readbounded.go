package transports

import (
	"errors"
	"io"
)

// errTooBig is readAtMost's error for input over its limit.
var errTooBig = errors.New("message over the limit")

// readAtMost reads r to its end into a buffer of at most limit bytes and
// fails with errTooBig as soon as r has more. The buffer starts at first
// bytes (at most limit) and doubles only when full, so memory follows the
// bytes that arrived, not what a client announced; input of exactly limit
// bytes ends in a buffer of that size. before, when not nil, runs ahead of
// every read (to move a read deadline). It reads at most one byte past
// the limit.
func readAtMost(r io.Reader, limit, first int, before func()) ([]byte, error) {
	b := make([]byte, 0, min(limit, first))
	for {
		if before != nil {
			before()
		}
		if len(b) == limit {
			var one [1]byte
			n, err := io.ReadFull(r, one[:])
			switch {
			case n > 0:
				return nil, errTooBig
			case err == io.EOF:
				return b, nil
			}
			return nil, err
		}
		if len(b) == cap(b) {
			b = append(make([]byte, 0, min(2*cap(b), limit)), b...)
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		switch {
		case err == io.EOF:
			return b, nil
		case err != nil:
			return nil, err
		}
	}
}
