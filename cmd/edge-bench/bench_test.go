package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
	"github.com/edgeworks/edge/transports"
)

// startEdge runs an embedded edge on a free loopback port until the test
// ends, and returns its URL.
func startEdge(t *testing.T) *url.URL {
	t.Helper()
	return serveEdge(t, resume.NewMemory(resume.MemoryConfig{}))
}

// serveEdge runs an edge on broker (with opts) until the test ends, and
// returns its URL.
func serveEdge(t *testing.T, broker edge.Broker, opts ...transports.Option) *url.URL {
	t.Helper()
	srv, err := transports.New(transports.Config{}, broker, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("edge Run: %v", err)
		}
	})
	return &url.URL{Scheme: "http", Host: ln.Addr().String()}
}

// parse returns the config of args for subcommand name, failing the test
// on a bad one.
func parse(t *testing.T, name string, args ...string) config {
	t.Helper()
	c, err := parseConfig(name, args, io.Discard)
	if err != nil {
		t.Fatalf("parseConfig(%q): %v", args, err)
	}
	return c
}

func TestRunAgainstEdge(t *testing.T) {
	u := startEdge(t)
	tests := []struct {
		name         string
		args         []string
		unsubscribed bool // some channel has no subscriber
	}{
		{"mix of transports", []string{"--transport", "mix", "--subs", "20", "--channels", "2", "--duration", "1s"}, false},
		{"channel without subscribers", []string{"--transport", "sse", "--subs", "2", "--channels", "3", "--duration", "500ms"}, true},
		{"batches", []string{"--transport", "mix", "--subs", "6", "--channels", "3", "--duration", "1s", "--batch", "7"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--url", u.String(), "--rate", "200", "--size", "100", "--ramp-batch", "7"}, tt.args...)
			c := parse(t, "run", args...)
			rep, err := runBench(t.Context(), c, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			checkExactRun(t, c, rep)
			// With one subscriber per subscribed channel, a message to the
			// channel nobody subscribes to must not be expected anywhere.
			if tt.unsubscribed && rep.Expected >= rep.Published {
				t.Errorf("expected %d: counts the channel nobody subscribes to (%d published)", rep.Expected, rep.Published)
			}
			if rep.LatencyMaxMs <= 0 || rep.LatencyP50Ms > rep.LatencyP99Ms || rep.ConnsPerS <= 0 || rep.DeliveredPerS <= 0 {
				t.Errorf("implausible figures: %+v", rep)
			}
			var out strings.Builder
			if err := rep.write(&out, true); err != nil || strings.Count(out.String(), "\n") != 1 ||
				!strings.Contains(out.String(), `"lost":0,`) || !strings.Contains(out.String(), `"rss_per_conn_bytes":null`) {
				t.Errorf("JSON line %q, %v", out.String(), err)
			}
		})
	}
}

// A run over several URLs spreads its subscribers and publishes over them:
// two edges on one Redis make a fleet of two nodes.
func TestRunAgainstFleet(t *testing.T) {
	rs := redistest.Start(t)
	a, b := serveRedisEdge(t, rs.URL()), serveRedisEdge(t, rs.URL())
	c := parse(t, "run", "--url", a.String()+","+b.String(), "--transport", "mix", "--subs", "12", "--channels", "3",
		"--rate", "200", "--duration", "500ms", "--publishers", "4")
	rep, err := runBench(t.Context(), c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checkExactRun(t, c, rep)
	if len(rep.ConnectedPerURL) != 2 || rep.ConnectedPerURL[0] != 6 || rep.ConnectedPerURL[1] != 6 {
		t.Errorf("connected per URL %v, want [6 6]", rep.ConnectedPerURL)
	}
}

func TestRunWithPID(t *testing.T) {
	// The edge runs in this process, so the test's own pid stands in for it.
	u := startEdge(t)
	c := parse(t, "run", "--url", u.String(), "--transport", "ws", "--subs", "5", "--rate", "100", "--duration", "200ms",
		"--pid", "0")
	c.PIDs = []int{syscallGetpid()}
	rep, err := runBench(t.Context(), c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.RSSBeforeBytes == nil || *rep.RSSBeforeBytes <= 0 || rep.RSSPerConnBytes == nil || rep.CPUS == nil || rep.CPUSPerMDeliveries == nil {
		t.Errorf("process figures missing: %+v", rep)
	}
	var out strings.Builder
	if err := rep.write(&out, false); err != nil || !strings.Contains(out.String(), "edge RSS/conn") {
		t.Errorf("table %q, %v", out.String(), err)
	}
}

func TestBaseline(t *testing.T) {
	c := parse(t, "baseline", "--subs", "10", "--rate", "200", "--size", "100", "--duration", "500ms")
	rep, err := runBaseline(t.Context(), c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Connected != 10 || rep.Published != c.total() || rep.Expected != 10*c.total() ||
		rep.Delivered != rep.Expected || rep.Lost != 0 || rep.Duplicated != 0 {
		t.Errorf("baseline: %+v", rep)
	}
}

func TestRunRefusesBadTargets(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"remote url", []string{"--url", "http://192.0.2.1:8080"}, "not loopback"},
		{"one remote url of several", []string{"--url", "http://127.0.0.1:8080,http://192.0.2.1:8080"}, "not loopback"},
		{"remote redis", []string{"--publish", "redis", "--redis", "redis://example.com:6379"}, "not loopback"},
		{"remote source", []string{"--sources", "127.0.0.2,10.1.1.1"}, "not a loopback address"},
		{"too long", []string{"--duration", "11m"}, "at most 10m"},
		{"too many", []string{"--subs", "100001"}, "give 1 to 100000"},
		{"unknown transport", []string{"--transport", "grpc"}, "use ws, sse, poll or mix"},
		{"batch too large", []string{"--batch", "1001"}, "give 1 to 1000"},
		{"batch to nchan", []string{"--batch", "10", "--target", "nchan"}, "--target edge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("run", tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseConfig(%q) = %v, want an error with %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestMainRunExitCodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, tt := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"frobnicate"}, 2},
		{[]string{"run", "-h"}, 0},
		{[]string{"run", "--subs", "0"}, 2},
		{[]string{"baseline", "--subs", "3", "--rate", "100", "--duration", "100ms", "--json"}, 0},
	} {
		var out strings.Builder
		if got := mainRun(ctx, tt.args, strings.NewReader(""), &out, io.Discard); got != tt.code {
			t.Errorf("mainRun(%q) = %d, want %d", tt.args, got, tt.code)
		}
	}
}

// checkExactRun fails t unless the run of c connected every subscriber,
// published every message and delivered each exactly once.
func checkExactRun(t *testing.T, c config, rep *report) {
	t.Helper()
	if rep.Connected != c.Subs || rep.ConnectErrors != 0 || rep.EndedEarly != 0 {
		t.Errorf("connected %d of %d, %d errors (%s), %d ended early (%s)",
			rep.Connected, c.Subs, rep.ConnectErrors, rep.FirstConnectError, rep.EndedEarly, rep.FirstEndError)
	}
	if rep.PublishErrors != 0 || rep.Published != c.total() {
		t.Errorf("published %d of %d, %d errors: %s", rep.Published, c.total(), rep.PublishErrors, rep.FirstPublishError)
	}
	if rep.Lost != 0 || rep.Duplicated != 0 || rep.Unparsed != 0 || rep.Delivered != rep.Expected {
		t.Errorf("expected %d delivered %d lost %d duplicated %d unparsed %d",
			rep.Expected, rep.Delivered, rep.Lost, rep.Duplicated, rep.Unparsed)
	}
}
