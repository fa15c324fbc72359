package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeworks/edge/resume/redistest"
)

// buildEdge builds cmd/edge into a temporary directory of the test.
func buildEdge(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "edge")
	if out, err := exec.Command("go", "build", "-o", bin, "../edge").CombinedOutput(); err != nil {
		t.Fatalf("build the edge: %v\n%s", err, out)
	}
	return bin
}

// edgeProcess is an edge started by a test.
type edgeProcess struct {
	url  string
	cmd  *exec.Cmd
	out  bytes.Buffer // its stderr
	done chan struct{}
}

// startEdgeProcess starts bin with args on a free loopback port and
// returns once it is ready; it is killed at cleanup.
func startEdgeProcess(t *testing.T, bin string, args ...string) *edgeProcess {
	t.Helper()
	p := &edgeProcess{cmd: exec.Command(bin, append([]string{"--listen", "127.0.0.1:0"}, args...)...), done: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewReader(stdout)
	go func() {
		defer close(p.done)
		p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("edge %s stderr:\n%s", p.url, p.out.String())
		}
	})
	for p.url == "" {
		line, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("edge banner ended: %v", err)
		}
		if u, ok := strings.CutPrefix(strings.TrimSpace(line), "edge is ready at "); ok {
			p.url = u
		}
	}
	go io.Copy(io.Discard, lines)
	return p
}

// kill kills the edge with SIGKILL and waits for it to exit.
func (p *edgeProcess) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// signalWriter closes seen the first time a write holds want.
type signalWriter struct {
	want string
	seen chan struct{}
	once sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(w.want)) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

// Three edge processes on one Redis; one is killed with SIGKILL mid-run.
// Its subscribers (WebSocket, SSE and long-poll) reconnect to the others
// with their cursors and miss nothing, and publishes that went to it are
// retried on the next node with their Idempotency-Key: nothing lost,
// nothing twice.
func TestReconnectAcrossKilledNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three edges")
	}
	rs := redistest.Start(t)
	bin := buildEdge(t)
	var nodes []*edgeProcess
	var urls []string
	for range 3 {
		n := startEdgeProcess(t, bin, "--redis", rs.URL())
		nodes = append(nodes, n)
		urls = append(urls, n.url)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const subs, duration = 60, 3 * time.Second
	c := parse(t, "run", "--url", strings.Join(urls, ","), "--transport", "mix", "--subs", fmt.Sprint(subs),
		"--channels", "3", "--rate", "100", "--duration", duration.String(), "--drain", "10s", "--publishers", "6", "--reconnect")
	publishing := &signalWriter{want: "publishing", seen: make(chan struct{})}
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		select {
		case <-publishing.seen:
		case <-ctx.Done():
			return
		}
		midRun := time.NewTimer(duration / 2) // the fault's schedule, not a wait for an event
		defer midRun.Stop()
		select {
		case <-midRun.C:
			nodes[1].kill()
		case <-ctx.Done():
		}
	}()
	rep, err := runBench(ctx, c, publishing)
	<-killed
	if err != nil {
		t.Fatal(err)
	}
	if rep.AllBackS != nil && rep.LatencyP99UndisturbedMs != nil {
		t.Logf("disturbed %d, reconnects %d, refused %d, all back in %.2fs, p99 undisturbed %.1f ms",
			*rep.Disturbed, *rep.Reconnects, *rep.ReconnectsRefused, *rep.AllBackS, *rep.LatencyP99UndisturbedMs)
	}
	if rep.Connected != subs || rep.Lost != 0 || rep.Duplicated != 0 || rep.Delivered != rep.Expected {
		t.Errorf("connected %d of %d, expected %d delivered %d lost %d duplicated %d",
			rep.Connected, subs, rep.Expected, rep.Delivered, rep.Lost, rep.Duplicated)
	}
	if rep.PublishErrors != 0 || rep.Published != c.total() {
		t.Errorf("published %d of %d, %d errors: %s", rep.Published, c.total(), rep.PublishErrors, rep.FirstPublishError)
	}
	// A third of the publishes after the kill went to the dead node first.
	if rep.PublishRetries == 0 {
		t.Error("no publish retried, though a third of them went to the killed node")
	}
	// Subscriber i is on node i mod 3: a third of them were on the killed
	// node.
	if *rep.Disturbed != subs/3 || *rep.StillDown != 0 || *rep.Reconnects < subs/3 || rep.AllBackS == nil {
		t.Errorf("disturbed %d, still down %d, reconnects %d, all back %v; want %d disturbed, all back",
			*rep.Disturbed, *rep.StillDown, *rep.Reconnects, rep.AllBackS, subs/3)
	}
	if rep.EndedEarly != 0 || rep.LatencyP99UndisturbedMs == nil || *rep.LatencyP99UndisturbedMs <= 0 {
		t.Errorf("ended early %d (%s), p99 undisturbed %v", rep.EndedEarly, rep.FirstEndError, rep.LatencyP99UndisturbedMs)
	}
}

// reconnectEdge is a stand-in for the edge that speaks just enough SSE:
// its first stream ends after one message, the second subscribe gets 429
// with Retry-After, the third stream tells a gap, carries one message and
// ends with a disconnect event that advises 200 ms, and the fourth holds
// on after one message. Each stream starts at the Last-Event-ID sent.
type reconnectEdge struct {
	mu      sync.Mutex
	lastIDs []string // the Last-Event-ID of each subscribe
}

func (f *reconnectEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n := len(f.lastIDs)
	f.lastIDs = append(f.lastIDs, r.Header.Get("Last-Event-ID"))
	f.mu.Unlock()
	if n == 1 {
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":{"code":"rate_limited","message":"slow down"}}`, http.StatusTooManyRequests)
		return
	}
	seq := max(n-1, 0) // 0, then 1 and 2 after the refusal
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprintf(w, "retry: 1000\n\nid: %s\n\n", cmp.Or(r.Header.Get("Last-Event-ID"), "0-0"))
	if n == 2 {
		io.WriteString(w, "event: gap\ndata: {\"channel\":\"bench-0\"}\n\n")
	}
	fmt.Fprintf(w, "id: 1-%d\ndata: %s\n\n", seq, appendPayload(nil, uint64(seq), time.Now().UnixNano(), 100))
	switch n {
	case 0:
		return // the stream ends
	case 2:
		io.WriteString(w, "retry: 200\nevent: disconnect\ndata: {\"code\":1012,\"reason\":\"shutdown\",\"reconnect\":true}\n\n")
		return
	}
	w.(http.Flusher).Flush()
	<-r.Context().Done()
}

// A subscriber whose stream ends reconnects with its cursor as
// Last-Event-ID, waits as a 429's Retry-After and a disconnect's retry:
// say, and counts the gap signal apart from the messages.
func TestReconnectHonoursRetryAfterAndCursor(t *testing.T) {
	f := &reconnectEdge{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := &subscriber{transport: transportSSE, env: newClientEnv(parse(t, "run", "--url", srv.URL, "--reconnect")),
		shard: new(recorder).shard(0)}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	recv := s.connect(ctx)
	if recv == nil {
		t.Fatal(s.connectErr)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		recv()
	}()
	defer func() { cancel(); <-done }()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.shard.delivered.Load() < 3 {
		select {
		case <-deadline.C:
			f.mu.Lock()
			defer f.mu.Unlock()
			t.Fatalf("%d of 3 messages within 10s; Last-Event-IDs %q", s.shard.delivered.Load(), f.lastIDs)
		case <-tick.C:
		}
	}
	cancel()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	if want := []string{"", "1-0", "1-0", "1-1"}; fmt.Sprint(f.lastIDs) != fmt.Sprint(want) {
		t.Errorf("Last-Event-IDs %q, want %q", f.lastIDs, want)
	}
	if s.rc.refused != 1 || s.rc.reconnects != 2 || s.gaps != 1 || s.rc.lostAt == 0 || s.rc.down {
		t.Errorf("refused %d, reconnects %d, gaps %d, lost at %d, down %v; want 1, 2, 1, set, false",
			s.rc.refused, s.rc.reconnects, s.gaps, s.rc.lostAt, s.rc.down)
	}
	if s.unparsed != 0 || s.track.unique != 3 || s.track.dups != 0 {
		t.Errorf("unparsed %d, unique %d, duplicated %d; want 0, 3, 0", s.unparsed, s.track.unique, s.track.dups)
	}
	if back := time.Duration(s.rc.backAt - s.rc.lostAt); back < 1200*time.Millisecond {
		t.Errorf("back %s after the first loss, sooner than Retry-After (1s) and retry: (200ms)", back)
	}
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		attempt int
		ceiling time.Duration
	}{
		{0, time.Second}, {1, 2 * time.Second}, {4, 16 * time.Second}, {5, 30 * time.Second}, {60, 30 * time.Second},
	} {
		t.Run(fmt.Sprint(tt.attempt), func(t *testing.T) {
			for range 1000 {
				if d := backoff(tt.attempt); d < 0 || d >= tt.ceiling {
					t.Fatalf("backoff(%d) = %s, want in [0, %s)", tt.attempt, d, tt.ceiling)
				}
			}
		})
	}
}
