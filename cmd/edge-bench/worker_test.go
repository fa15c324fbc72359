package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildTool builds edge-bench into a temporary directory and returns its
// path. Without a go command it skips the test, or fails it when CI is set.
func buildTool(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no go command to build edge-bench: %v", err)
		}
		t.Skipf("no go command to build edge-bench: %v", err)
	}
	exe := filepath.Join(t.TempDir(), "edge-bench")
	out, err := exec.CommandContext(t.Context(), goCmd, "build", "-o", exe, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

func TestRunWithWorkers(t *testing.T) {
	exe := buildTool(t)
	u := startEdge(t)
	// 30 messages over 2 channels, 15 each; subscriber i is on channel
	// i % 2, so each channel has 3 subscribers: 90 deliveries expected,
	// from 2 worker processes of 3 subscribers each (ws, sse, poll).
	cmd := exec.CommandContext(t.Context(), exe, "run", "--url", u.String(), "--transport", "mix",
		"--subs", "6", "--channels", "2", "--rate", "100", "--duration", "300ms", "--ramp-batch", "2",
		"--workers", "2", "--sources", "127.0.0.1,127.0.0.2", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("edge-bench run --workers 2: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "6 of 6 subscribers ready in 2 worker processes") {
		t.Errorf("progress %q does not say the subscribers ran in 2 workers", stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report %q: %v", stdout.String(), err)
	}
	if rep.Workers != 2 || rep.Connected != 6 || rep.ConnectErrors != 0 || rep.EndedEarly != 0 {
		t.Errorf("workers %d, connected %d, %d connect errors (%s), %d ended early (%s); want 2 workers and 6 connected",
			rep.Workers, rep.Connected, rep.ConnectErrors, rep.FirstConnectError, rep.EndedEarly, rep.FirstEndError)
	}
	if rep.Published != 30 || rep.Expected != 90 || rep.Delivered != 90 || rep.Lost != 0 || rep.Duplicated != 0 || rep.Unparsed != 0 {
		t.Errorf("published %d expected %d delivered %d lost %d duplicated %d unparsed %d; want 30, 90, 90 and no loss",
			rep.Published, rep.Expected, rep.Delivered, rep.Lost, rep.Duplicated, rep.Unparsed)
	}
	if rep.LatencyMaxMs <= 0 || rep.LatencyP50Ms > rep.LatencyP99Ms || rep.ConnsPerS <= 0 || rep.DeliveredPerS <= 0 {
		t.Errorf("implausible merged figures: %+v", rep)
	}
}

func TestFailingWorkers(t *testing.T) {
	// Stand-ins for edge-bench that exit at once or write no JSON: the
	// parent reports the worker's failure instead of waiting.
	u := startEdge(t)
	c := parse(t, "run", "--url", u.String(), "--subs", "4", "--workers", "2")
	tests := []struct {
		name, exe, want string
	}{
		{"exits", "/bin/false", "exit status 1"},
		{"writes no JSON", "/bin/echo", "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := os.Stat(tt.exe); err != nil {
				t.Skipf("no %s: %v", tt.exe, err)
			}
			shares, err := startWorkers(t.Context(), c, tt.exe)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				for _, s := range shares {
					s.close()
				}
			}()
			err = eachShare(shares, func(_ int, s share) error {
				_, err := s.ramp()
				return err
			})
			if err == nil || !strings.Contains(err.Error(), "worker ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ramp: %v, want a worker error with %q", err, tt.want)
			}
		})
	}
}

func TestWorkerStopsWithoutParent(t *testing.T) {
	// Its stdin ends before the published line: the parent is gone.
	u := startEdge(t)
	c := parse(t, "worker", "--url", u.String(), "--subs", "4", "--workers", "2", "--worker-index", "1")
	err := runWorker(t.Context(), c, strings.NewReader(""), io.Discard)
	if !errors.Is(err, errParentGone) {
		t.Errorf("runWorker with stdin at its end: %v, want %v", err, errParentGone)
	}
}

func TestWorkerSources(t *testing.T) {
	ips := func(s string) []net.IP {
		var out []net.IP
		for f := range strings.SplitSeq(s, ",") {
			out = append(out, net.ParseIP(f))
		}
		return out
	}
	tests := []struct {
		name         string
		sources      string
		index, count int
		want         string
	}{
		{"one each", "127.0.0.1,127.0.0.2", 1, 2, "127.0.0.2"},
		{"every other", "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5", 0, 2, "127.0.0.1,127.0.0.3,127.0.0.5"},
		{"shared", "127.0.0.1,127.0.0.2", 2, 3, "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, ip := range workerSources(ips(tt.sources), tt.index, tt.count) {
				got = append(got, ip.String())
			}
			if strings.Join(got, ",") != tt.want {
				t.Errorf("workerSources(%s, %d, %d) = %v, want %s", tt.sources, tt.index, tt.count, got, tt.want)
			}
		})
	}
}

func TestRunRefusesWhatDoesNotFit(t *testing.T) {
	one := []net.IP{net.IPv4(127, 0, 0, 1)}
	two := append(one, net.IPv4(127, 0, 0, 2))
	tests := []struct {
		name string
		err  error
		want string // empty: fits
	}{
		{"fits one process", checkRunFiles(config{Subs: 15_000, Publishers: 16, Workers: 1}, 20_000), ""},
		{"needs workers", checkRunFiles(config{Subs: 50_000, Publishers: 16, Workers: 1}, 20_000), "add --workers 3"},
		{"fits workers", checkRunFiles(config{Subs: 50_000, Publishers: 16, Workers: 3}, 20_000), ""},
		{"needs more workers", checkRunFiles(config{Subs: 50_000, Publishers: 16, Workers: 2}, 20_000), "raise --workers to 3"},
		{"ports of one source", checkSourcePorts(config{Subs: 30_000, Sources: one}, 28_232), "give 2 or more loopback addresses"},
		{"ports of two sources", checkSourcePorts(config{Subs: 30_000, Sources: two}, 28_232), ""},
		{"ports unknown", checkSourcePorts(config{Subs: 30_000, Sources: one}, 0), ""},
		{"workers on their own sources", checkSourcePorts(config{Subs: 50_000, Sources: two, Workers: 2}, 28_232), ""},
		// Workers 0 and 2 share the first address: 2/3 of the subscribers.
		{"workers sharing a source", checkSourcePorts(config{Subs: 50_000, Sources: two, Workers: 3}, 28_232), "one address 33333 connections"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			switch {
			case tt.want == "" && tt.err != nil:
				t.Errorf("refused: %v", tt.err)
			case tt.want != "" && (tt.err == nil || !strings.Contains(tt.err.Error(), tt.want)):
				t.Errorf("got %v, want an error with %q", tt.err, tt.want)
			}
		})
	}
}
