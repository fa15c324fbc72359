package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
	"github.com/edgeworks/edge/transports"
)

func TestRateFlag(t *testing.T) {
	tests := []struct {
		name       string
		subcommand string
		rate       string
		closedLoop bool
		want       float64 // the rate, without closedLoop
		err        string  // "" when the flags parse
	}{
		{"default", "run", "", false, 100, ""},
		{"integer", "run", "40000", false, 40000, ""},
		{"fraction", "run", "2.5", false, 2.5, ""},
		{"exponent", "run", "1e3", false, 1000, ""},
		{"hex float", "run", "0x1p4", false, 16, ""},
		{"max", "run", "max", true, 0, ""},
		{"MAX", "run", "MAX", true, 0, ""},
		{"Max", "run", "Max", true, 0, ""},
		{"max in a worker", "worker", "max", true, 0, ""},
		{"max in baseline", "baseline", "max", false, 0, "--rate max: baseline fans out at a fixed rate"},
		{"word", "run", "fast", false, 0, `invalid value "fast" for flag -rate: parse error`},
		{"max with a suffix", "run", "maximum", false, 0, "parse error"},
		{"empty", "run", "=", false, 0, "parse error"},
		{"overflow", "run", "1e400", false, 0, `invalid value "1e400" for flag -rate: value out of range`},
		{"zero", "run", "0", false, 0, "--rate 0: give more than 0 and at most 1000000 messages/s"},
		{"negative", "run", "-5", false, 0, "--rate -5: give more than 0"},
		{"too fast", "run", "2e6", false, 0, "--rate 2e+06: give more than 0 and at most 1000000"},
		{"infinite", "run", "inf", false, 0, "--rate +Inf: give more than 0"},
		{"not a number", "run", "NaN", false, 0, "--rate NaN: give more than 0"},
		{"nothing published", "run", "1", false, 0, "--rate 1 × --duration 500ms publishes nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"--duration", "500ms"}
			switch tt.rate {
			case "":
			case "=":
				args = append(args, "--rate=")
			default:
				args = append(args, "--rate", tt.rate)
			}
			c, err := parseConfig(tt.subcommand, args, io.Discard)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("parseConfig(%q) = %v, want an error with %q", args, err, tt.err)
				}
				return
			}
			if err != nil || c.ClosedLoop != tt.closedLoop || c.Rate != tt.want {
				t.Errorf("parseConfig(%q) = rate %g, closed loop %t, %v; want %g, %t", args, c.Rate, c.ClosedLoop, err, tt.want, tt.closedLoop)
			}
		})
	}
}

func TestRateFlagHelp(t *testing.T) {
	for _, tt := range []struct{ subcommand, want string }{
		{"run", "  -rate R\n    \tR: messages published per second, over all channels; or max:"},
		{"baseline", "  -rate R\n    \tR: messages published per second, over all channels (default 100)\n"},
	} {
		var out strings.Builder
		if _, err := parseConfig(tt.subcommand, []string{"-h"}, &out); err == nil || !strings.Contains(out.String(), tt.want) {
			t.Errorf("%s -h: %v, %q lacks %q", tt.subcommand, err, out.String(), tt.want)
		}
	}
}

// startRedisEdge runs an embedded edge on a Redis of its own until the
// test ends, and returns the edge's URL and the Redis URL.
func startRedisEdge(t *testing.T) (edgeURL *url.URL, redisURL string) {
	t.Helper()
	rs := redistest.Start(t)
	return serveRedisEdge(t, rs.URL()), rs.URL()
}

// serveRedisEdge runs an embedded edge on the Redis at redisURL until the
// test ends, and returns its URL: several make a fleet.
func serveRedisEdge(t *testing.T, redisURL string) *url.URL {
	t.Helper()
	r, err := resume.NewRedis(resume.RedisConfig{URLs: []string{redisURL}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return serveEdge(t, r, transports.WithStore(r))
}

func TestRunClosedLoop(t *testing.T) {
	u := startEdge(t)
	tests := []struct {
		name  string
		args  []string
		redis bool // publish into a Redis the edge runs on
	}{
		{"sse", []string{"--transport", "sse"}, false},
		{"ws", []string{"--transport", "ws"}, false},
		{"ws batches", []string{"--transport", "ws", "--batch", "10"}, false},
		{"sse batches over few publishers", []string{"--transport", "sse", "--batch", "10", "--publishers", "2"}, false},
		{"every transport over redis", []string{"--transport", "mix", "--publish", "redis"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := u
			if tt.redis {
				var redisURL string
				u, redisURL = startRedisEdge(t)
				tt.args = append(tt.args, "--redis", redisURL)
			}
			// 6 subscribers over 2 channels: 3 per channel. The drain ends
			// as soon as every delivery arrived; its bound is for a slow
			// machine.
			args := append([]string{"--url", u.String(), "--rate", "max", "--duration", "1s", "--subs", "6", "--channels", "2",
				"--publishers", "8", "--drain", "30s"}, tt.args...)
			c := parse(t, "run", args...)
			rep, err := runBench(t.Context(), c, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Connected != c.Subs || rep.EndedEarly != 0 || rep.PublishErrors != 0 {
				t.Errorf("connected %d of %d, %d ended early (%s), %d publish errors (%s)",
					rep.Connected, c.Subs, rep.EndedEarly, rep.FirstEndError, rep.PublishErrors, rep.FirstPublishError)
			}
			if rep.Published <= 0 || rep.PublishedPerS <= 0 || rep.Expected != 3*rep.Published ||
				rep.Delivered != rep.Expected || rep.Lost != 0 || rep.Duplicated != 0 || rep.Unparsed != 0 {
				t.Errorf("published %d (%.0f/s), expected %d (want 3 × published), delivered %d, lost %d, duplicated %d, unparsed %d",
					rep.Published, rep.PublishedPerS, rep.Expected, rep.Delivered, rep.Lost, rep.Duplicated, rep.Unparsed)
			}
			if c.Batch > 1 && rep.Published%int64(c.Batch) != 0 {
				t.Errorf("published %d: not whole batches of %d", rep.Published, c.Batch)
			}
			var table, line strings.Builder
			if err := rep.write(&table, false); err != nil || !strings.Contains(table.String(), fmt.Sprintf("max msg/s (closed loop, %d publishers) × 100 bytes for 1s", c.Publishers)) {
				t.Errorf("table %q, %v", table.String(), err)
			}
			if err := rep.write(&line, true); err != nil || !strings.Contains(line.String(), fmt.Sprintf(`"rate":0,"closed_loop":true,"publishers":%d,`, c.Publishers)) {
				t.Errorf("JSON line %q, %v", line.String(), err)
			}
		})
	}
}
