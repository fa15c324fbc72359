package main

import (
	"testing"
)

// feed gives a subscriber the payloads of seqs, as the edge would deliver
// them.
func feed(s *subscriber, seqs ...uint64) {
	for _, seq := range seqs {
		s.receive(appendPayload(nil, seq, 1, 100), 2)
	}
}

func TestLossAndDuplicates(t *testing.T) {
	tests := []struct {
		name      string
		seqs      []uint64
		published int64
		lost      int64
		dups      int64
	}{
		{"all in order", []uint64{0, 1, 2, 3, 4}, 5, 0, 0},
		{"a gap and a repeat", []uint64{0, 1, 3, 3, 4}, 5, 1, 1},
		{"reordered", []uint64{1, 0, 3, 2, 4}, 5, 0, 0},
		{"repeat of an old one", []uint64{0, 1, 2, 0}, 3, 0, 1},
		{"tail lost", []uint64{0, 1, 2}, 5, 2, 0},
		{"nothing received", nil, 4, 4, 0},
		{"long run slides the window", seqRange(0, 3*seqWindow), 3 * seqWindow, 0, 0},
		{"repeat far behind the window", append(seqRange(0, 2*seqWindow), 5), 2 * seqWindow, 0, 1},
		{"jump past the window", []uint64{0, 10 * seqWindow, 10*seqWindow + 1}, 10*seqWindow + 2, 10*seqWindow - 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &subscriber{env: new(clientEnv), shard: new(recorder).shard(0)}
			feed(s, tt.seqs...)
			if got := s.track.lost(tt.published); got != tt.lost {
				t.Errorf("lost = %d, want %d", got, tt.lost)
			}
			if s.track.dups != tt.dups {
				t.Errorf("duplicated = %d, want %d", s.track.dups, tt.dups)
			}
			if got := s.shard.delivered.Load(); got != s.track.unique {
				t.Errorf("recorded %d first deliveries, tracker has %d", got, s.track.unique)
			}
		})
	}
}

func seqRange(from, to uint64) []uint64 {
	var seqs []uint64
	for n := from; n < to; n++ {
		seqs = append(seqs, n)
	}
	return seqs
}

func TestReceiveUnparsed(t *testing.T) {
	s := &subscriber{env: new(clientEnv), shard: new(recorder).shard(0)}
	s.receive([]byte("hello"), 1)
	s.receive([]byte("seq=1 t=x"), 1)
	if s.unparsed != 2 || s.track.unique != 0 {
		t.Errorf("unparsed %d unique %d, want 2 and 0", s.unparsed, s.track.unique)
	}
}
