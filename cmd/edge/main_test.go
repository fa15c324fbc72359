package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeworks/edge/resume/redistest"
)

// TestBinary builds the real binary, starts it as a user would (listen
// address from the environment), subscribes, publishes, sends SIGTERM and
// expects a clean exit 0 after the subscriber was told to reconnect.
func TestBinary(t *testing.T) {
	bin := buildEdge(t)
	cmd := exec.Command(bin, "--drain-timeout", "3s")
	cmd.Env = append(os.Environ(), "EDGE_LISTEN=127.0.0.1:0")
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})

	banner := bufio.NewReader(stdout)
	first, err := banner.ReadString('\n')
	if err != nil {
		t.Fatalf("no banner: %v; stderr: %s", err, stderr.String())
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(first), "edge is ready at ")
	if !ok {
		t.Fatalf("banner %q", first)
	}
	var rest string
	for !strings.Contains(rest, "history:") {
		line, err := banner.ReadString('\n')
		if err != nil {
			t.Fatalf("banner ended: %v\n%s", err, rest)
		}
		rest += line
	}
	for _, want := range []string{"/v1/subscribe?channel=", "curl -X POST", "ws://"} {
		if !strings.Contains(rest, want) {
			t.Errorf("banner lacks %q:\n%s", want, rest)
		}
	}
	go io.Copy(io.Discard, banner)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	readUntil := streamLines(ctx, t, base+"/v1/subscribe?channel=news")
	readUntil("id: ") // live
	pub, err := http.Post(base+"/v1/publish?channel=news", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	pub.Body.Close()
	if got := readUntil("data: "); got != "data: hello" {
		t.Fatalf("got %q", got)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if got := readUntil("event: "); got != "event: disconnect" {
		t.Fatalf("got %q", got)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("edge did not exit after SIGTERM")
	}
}

func TestRunExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"help", []string{"--help"}, 0, "-history-size"},
		{"bad flag", []string{"--history-size", "lots"}, 2, "history-size"},
		{"bad listen", []string{"--listen", "nowhere"}, 2, "listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(context.Background(), tc.args, func(string) string { return "" }, &out, &out)
			if code != tc.code || !strings.Contains(out.String(), tc.out) {
				t.Fatalf("code %d, output %q", code, out.String())
			}
		})
	}
}

// buildEdge builds the binary once per test.
func buildEdge(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "edge")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startNode runs the binary with args and returns its base URL; the
// process is killed at cleanup.
func startNode(t *testing.T, bin string, args ...string) string {
	t.Helper()
	base, _ := startNodeBanner(t, bin, args...)
	return base
}

// startNodeBanner runs the binary with args and returns its base URL and
// its whole banner; the process is killed at cleanup.
func startNodeBanner(t *testing.T, bin string, args ...string) (base, banner string) {
	t.Helper()
	base, banner, _ = startProcess(t, bin, args...)
	return base, banner
}

// startProcess is startNodeBanner that also returns the running process.
func startProcess(t *testing.T, bin string, args ...string) (base, banner string, proc *os.Process) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewReader(stdout)
	for !strings.Contains(banner, "history:") {
		line, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("banner ended: %v\n%s; stderr: %s", err, banner, stderr.String())
		}
		banner += line
	}
	go io.Copy(io.Discard, lines)
	first, _, _ := strings.Cut(banner, "\n")
	base, ok := strings.CutPrefix(strings.TrimSpace(first), "edge is ready at ")
	if !ok {
		t.Fatalf("banner %q", banner)
	}
	return base, banner, cmd.Process
}

// Two edge processes on one Redis: a message published on one reaches an
// SSE subscriber on the other, and a client resumes on the other node.
func TestTwoProcessesOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	bin := buildEdge(t)
	a := startNode(t, bin, "--redis", srv.URL())
	b := startNode(t, bin, "--redis", srv.URL())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subscribe := func(base, lastID string) *bufio.Reader {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/subscribe?channel=fleet", nil)
		req.Header.Set("Accept", "text/event-stream")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return bufio.NewReader(resp.Body)
	}
	next := func(r *bufio.Reader) (id, data string) {
		t.Helper()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimSpace(line[4:])
			case strings.HasPrefix(line, "data: "):
				return id, strings.TrimSpace(line[6:])
			}
		}
	}
	publish := func(base, data string) {
		resp, err := http.Post(base+"/v1/publish?channel=fleet", "text/plain", strings.NewReader(data))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("publish: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	onB := subscribe(b, "")
	for { // wait until live: the id-only event
		line, err := onB.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "id: ") {
			break
		}
	}
	publish(a, "one")
	id, data := next(onB)
	if data != "one" {
		t.Fatalf("node B got %q", data)
	}
	publish(b, "two")
	publish(a, "three")
	onA := subscribe(a, id)
	for _, want := range []string{"two", "three"} {
		if _, got := next(onA); got != want {
			t.Fatalf("resumed on node A: %q, want %q", got, want)
		}
	}
}

// streamLines opens an SSE stream at url (closed when the test ends) and
// returns a function that reads its lines until one starts with prefix,
// and returns it trimmed; the test fails if the stream ends first.
func streamLines(ctx context.Context, t *testing.T, url string) (readUntil func(prefix string) string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	events := bufio.NewReader(resp.Body)
	return func(prefix string) string {
		t.Helper()
		for {
			line, err := events.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended looking for %q: %v", prefix, err)
			}
			if strings.HasPrefix(line, prefix) {
				return strings.TrimSpace(line)
			}
		}
	}
}
