package transports

import (
	"testing"
	"time"
)

// TestWriteDeadline checks which write deadlines a connection sets: all on
// a connection that is not a stream's, on a stream's only those that move
// the deadline set later by deadlineSlack or more, or earlier, or clear it.
func TestWriteDeadline(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	set := func(d time.Duration) writeDeadline { return writeDeadline(now.Add(d).UnixNano()) }
	tests := []struct {
		name  string
		from  writeDeadline
		t     time.Time
		moves bool
		want  writeDeadline
	}{
		{"exact: every deadline", 0, now.Add(time.Second), true, 0},
		{"exact: clearing", 0, time.Time{}, true, 0},
		{"coarse, none set", coarseNone, now.Add(writeTimeout), true, set(writeTimeout)},
		{"coarse, a little later", set(writeTimeout), now.Add(writeTimeout + deadlineSlack - 1), false, set(writeTimeout)},
		{"coarse, the same", set(writeTimeout), now.Add(writeTimeout), false, set(writeTimeout)},
		{"coarse, later by the slack", set(writeTimeout), now.Add(writeTimeout + deadlineSlack), true, set(writeTimeout + deadlineSlack)},
		{"coarse, earlier", set(writeTimeout), now.Add(time.Second), true, set(time.Second)},
		{"coarse, clearing", set(writeTimeout), time.Time{}, true, coarseNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.from
			if got := d.set(tt.t); got != tt.moves || d != tt.want {
				t.Errorf("set(%v) from %d = %v, now %d; want %v, %d", tt.t, tt.from, got, d, tt.moves, tt.want)
			}
		})
	}
}
