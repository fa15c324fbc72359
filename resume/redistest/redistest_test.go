package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestServerDo(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if want := "redis://" + s.Addr; s.URL() != want {
		t.Errorf("URL() = %q, want %q", s.URL(), want)
	}
	if host, _, err := net.SplitHostPort(s.Addr); err != nil || host != "127.0.0.1" {
		t.Errorf("Addr = %q, want 127.0.0.1:PORT", s.Addr)
	}
	// The steps run in order: later ones read what earlier ones wrote.
	steps := []struct {
		name    string
		args    []string
		want    string
		wantErr string // prefix of the error reply
	}{
		{name: "set", args: []string{"SET", "k", "v"}, want: "OK"},
		{name: "get", args: []string{"GET", "k"}, want: "v"},
		{name: "get missing is nil", args: []string{"GET", "missing"}, want: ""},
		{name: "binary-safe value", args: []string{"SET", "b", "a\r\nb\x00c"}, want: "OK"},
		{name: "get binary-safe value", args: []string{"GET", "b"}, want: "a\r\nb\x00c"},
		{name: "integer", args: []string{"INCRBY", "n", "-42"}, want: "-42"},
		{name: "array", args: []string{"RPUSH", "l", "x", "", "z"}, want: "3"},
		{name: "array elements joined", args: []string{"LRANGE", "l", "0", "-1"}, want: "x\n\nz"},
		{name: "nil array", args: []string{"BLPOP", "empty", "0.01"}, want: ""},
		{name: "publish", args: []string{"PUBLISH", "ch", "x"}, want: "0"},
		{name: "unknown command", args: []string{"NOSUCHCOMMAND", "x"}, wantErr: "ERR unknown command"},
		{name: "wrong type", args: []string{"INCR", "l"}, wantErr: "WRONGTYPE"},
		{name: "flushall", args: []string{"FLUSHALL"}, want: "OK"},
		{name: "flushed", args: []string{"DBSIZE"}, want: "0"},
	}
	for _, tc := range steps {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Do(t, tc.args...)
			if tc.wantErr != "" {
				var re replyError
				if !errors.As(err, &re) || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("Do(%q) = %q, %#v; want error reply %q...", tc.args, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Do(%q) = %q, %v; want %q", tc.args, got, err, tc.want)
			}
		})
	}
}

func TestStartConfig(t *testing.T) {
	t.Parallel()
	s := Start(t, "--maxmemory", "1mb", "--appendfsync", "everysec")
	dir, err := s.Do(t, "CONFIG", "GET", "dir")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		param, want string
	}{
		{"bind", "127.0.0.1"},
		{"protected-mode", "no"},
		{"save", ""},
		{"appendonly", "yes"},
		{"daemonize", "no"},
		{"maxmemory", "1048576"},    // an extra arg
		{"appendfsync", "everysec"}, // an extra arg overrides a default
	}
	for _, tc := range tests {
		t.Run(tc.param, func(t *testing.T) {
			got, err := s.Do(t, "CONFIG", "GET", tc.param)
			if want := tc.param + "\n" + tc.want; err != nil || got != want {
				t.Errorf("CONFIG GET %s = %q, %v; want %q", tc.param, got, err, want)
			}
		})
	}
	if _, d, _ := strings.Cut(dir, "\n"); !strings.HasPrefix(d, os.TempDir()) {
		t.Errorf("dir = %q, want a temp dir", d)
	}
}

func TestRestartKeepsData(t *testing.T) {
	t.Parallel()
	s := Start(t)
	addr := s.Addr
	before := runID(t, s)
	if _, err := s.Do(t, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)
	if s.Addr != addr {
		t.Errorf("Addr after Restart = %q, want %q", s.Addr, addr)
	}
	if after := runID(t, s); after == before {
		t.Errorf("run_id %s unchanged: the server was not restarted", after)
	}
	if got, err := s.Do(t, "GET", "k"); err != nil || got != "v" {
		t.Errorf("GET k after Restart = %q, %v; want %q", got, err, "v")
	}
}

// runID returns the run_id of s, which changes on every start.
func runID(t *testing.T, s *Server) string {
	t.Helper()
	info, err := s.Do(t, "INFO", "server")
	if err != nil {
		t.Fatal(err)
	}
	id, ok := infoField(info, "run_id")
	if !ok {
		t.Fatalf("INFO server has no run_id:\n%s", info)
	}
	return id
}

// TestKill checks that a killed server comes back with what it persisted:
// everything with AOF (appendfsync always), nothing without.
func TestKill(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"aof", nil, "v"},
		{"no persistence", []string{"--appendonly", "no"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := Start(t, tc.args...)
			if _, err := s.Do(t, "SET", "k", "v"); err != nil {
				t.Fatal(err)
			}
			before := runID(t, s)
			s.Kill(t)
			s.Kill(t)
			if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
				c.Close()
				t.Fatalf("%s still accepts connections after Kill", s.Addr)
			}
			s.Restart(t)
			if after := runID(t, s); after == before {
				t.Errorf("run_id %s unchanged: the server was not restarted", after)
			}
			if got, err := s.Do(t, "GET", "k"); err != nil || got != tc.want {
				t.Errorf("GET k after Kill and Restart = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestStopTwice(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Stop(t)
	s.Stop(t)
	if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Stop", s.Addr)
	}
	// Restart starts a stopped server again; t.Cleanup stops it.
	s.Restart(t)
	if got, err := s.Do(t, "PING"); err != nil || got != "PONG" {
		t.Errorf("PING after Restart = %q, %v", got, err)
	}
}

func TestStopAfterShutdown(t *testing.T) {
	t.Parallel()
	s := Start(t)
	// SHUTDOWN closes the connection instead of replying.
	if _, err := s.do(time.Now().Add(doTimeout), "SHUTDOWN", "NOSAVE"); err == nil {
		t.Fatal("SHUTDOWN replied")
	}
	s.Stop(t) // the server exited cleanly by itself: no failure
}

// TestLaunchOnTakenPort checks that a server whose port another
// redis-server holds reports errPortTaken, which makes Start retry.
func TestLaunchOnTakenPort(t *testing.T) {
	t.Parallel()
	s := Start(t)
	dir := t.TempDir()
	twin := *s
	twin.proc = nil
	twin.dir = dir
	twin.args = slices.Clone(s.args)
	twin.args[slices.Index(twin.args, "--dir")+1] = dir
	p, err := twin.launch()
	if !errors.Is(err, errPortTaken) {
		twin.Stop(t)
		t.Fatalf("launch on %s, held by another server: %v, want errPortTaken%s", s.Addr, err, p.tail())
	}
	if got, err := s.Do(t, "PING"); err != nil || got != "PONG" {
		t.Errorf("the first server: PING = %q, %v", got, err)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := StartCluster(t, 3)
	t.Logf("StartCluster(t, 3) took %v", time.Since(start))
	addrs := c.Addrs()
	if len(addrs) != 3 {
		t.Fatalf("Addrs() = %q, want 3 addresses", addrs)
	}
	for _, s := range c.Nodes {
		info, err := s.Do(t, "CLUSTER", "INFO")
		if err != nil {
			t.Fatal(err)
		}
		if state, _ := infoField(info, "cluster_state"); state != "ok" {
			t.Errorf("%s: cluster_state:%s, want ok", s.Addr, state)
		}
	}
	// With 3 masters redis-cli assigns slots 0-5460, 5461-10922 and
	// 10923-16383; these keys hash into each range.
	keys := []string{"hello", "bar", "c", "baz", "foo", "a"}
	owners := map[string]bool{}
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			slot, err := c.Nodes[0].Do(t, "CLUSTER", "KEYSLOT", key)
			if err != nil {
				t.Fatal(err)
			}
			owner := c.Nodes[0]
			if _, err := owner.Do(t, "SET", key, "v-"+key); err != nil {
				// MOVED SLOT ADDR: the key belongs to another node.
				f := strings.Fields(err.Error())
				if len(f) != 3 || f[0] != "MOVED" || f[1] != slot {
					t.Fatalf("SET %s via %s: %v; want OK or MOVED %s ADDR", key, owner.Addr, err, slot)
				}
				i := slices.Index(addrs, f[2])
				if i < 0 {
					t.Fatalf("MOVED to %s, not a node of %q", f[2], addrs)
				}
				owner = c.Nodes[i]
				if _, err := owner.Do(t, "SET", key, "v-"+key); err != nil {
					t.Fatalf("SET %s via its owner %s: %v", key, owner.Addr, err)
				}
			}
			owners[owner.Addr] = true
			if got, err := owner.Do(t, "GET", key); err != nil || got != "v-"+key {
				t.Errorf("GET %s via %s = %q, %v; want %q", key, owner.Addr, got, err, "v-"+key)
			}
			for _, s := range c.Nodes {
				if s == owner {
					continue
				}
				if _, err := s.Do(t, "GET", key); err == nil || !strings.HasPrefix(err.Error(), "MOVED "+slot+" "+owner.Addr) {
					t.Errorf("GET %s via non-owner %s: %v; want MOVED %s %s", key, s.Addr, err, slot, owner.Addr)
				}
			}
		})
	}
	if len(owners) != len(c.Nodes) {
		t.Errorf("keys landed on %d of %d nodes", len(owners), len(c.Nodes))
	}
}

// TestClusterFailover takes a master's slots over twice: by CLUSTER
// FAILOVER on its replica, then by killing the new master, whose replica
// (the old master) takes over.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := StartClusterWith(t, ClusterOptions{Masters: 3, Replicas: 1, NodeTimeout: time.Second})
	t.Logf("3 masters with a replica each took %v", time.Since(start))
	if len(c.Nodes) != 6 {
		t.Fatalf("%d nodes, want 6", len(c.Nodes))
	}
	const key = "failover"
	first := c.MasterOf(t, key)
	if !slices.Contains(c.Nodes[:3], first) {
		t.Errorf("%s serves %s, not one of the first 3 nodes", first.Addr, key)
	}
	if _, err := first.Do(t, "SET", key, "v"); err != nil {
		t.Fatal(err)
	}
	replicas := c.ReplicasOf(t, first)
	if len(replicas) != 1 {
		t.Fatalf("%s has %d replicas, want 1", first.Addr, len(replicas))
	}
	second := replicas[0]
	c.Failover(t, second)
	if got := c.MasterOf(t, key); got != second {
		t.Fatalf("after Failover %s serves %s, want %s", got.Addr, key, second.Addr)
	}
	if got := c.ReplicasOf(t, second); !slices.Equal(got, []*Server{first}) {
		t.Fatalf("after Failover the replicas of %s are %v, want the old master", second.Addr, got)
	}
	start = time.Now()
	second.Kill(t)
	c.WaitMaster(t, first)
	t.Logf("failover after a kill took %v", time.Since(start))
	if got := c.MasterOf(t, key); got != first {
		t.Fatalf("after the kill %s serves %s, want %s", got.Addr, key, first.Addr)
	}
	if got, err := first.Do(t, "GET", key); err != nil || got != "v" {
		t.Errorf("GET %s = %q, %v; want v", key, got, err)
	}
}

func TestStartClusterTooSmall(t *testing.T) {
	rec := &recorder{TB: t}
	run(rec, func(tb testing.TB) { StartCluster(tb, 2) })
	if !strings.Contains(rec.fatal, "at least 3") {
		t.Errorf("StartCluster(t, 2): fatal %q, want one about 3 masters", rec.fatal)
	}
}

// TestNotInstalled checks the skip/fatal rule with an empty PATH. It does
// not run in parallel: it changes the environment.
func TestNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	starts := []struct {
		name  string
		start func(testing.TB)
	}{
		{"Start", func(tb testing.TB) { Start(tb) }},
		{"StartCluster", func(tb testing.TB) { StartCluster(tb, 3) }},
	}
	for _, st := range starts {
		t.Run(st.name+"/CI unset skips", func(t *testing.T) {
			t.Setenv("CI", "")
			rec := &recorder{TB: t}
			run(rec, st.start)
			if rec.fatal != "" || !strings.Contains(rec.skip, "apt-get install redis-server") {
				t.Errorf("skip %q, fatal %q; want a skip saying how to install it", rec.skip, rec.fatal)
			}
		})
		t.Run(st.name+"/CI set fails", func(t *testing.T) {
			t.Setenv("CI", "true")
			rec := &recorder{TB: t}
			run(rec, st.start)
			if want := "redis-server not installed; .ci/run installs it"; rec.fatal != want || rec.skip != "" {
				t.Errorf("skip %q, fatal %q; want fatal %q", rec.skip, rec.fatal, want)
			}
		})
	}
}

// recorder is a testing.TB that records Fatal and Skip instead of ending
// the test; run calls code with it on a goroutine of its own, which they
// end. Everything else goes to the real TB.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Fatal(args ...any)         { r.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...); runtime.Goexit() }
func (r *recorder) FailNow()                  { r.fatal = "FailNow"; runtime.Goexit() }
func (r *recorder) Skip(args ...any)          { r.skip = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Skipf(f string, a ...any)  { r.skip = fmt.Sprintf(f, a...); runtime.Goexit() }
func (r *recorder) SkipNow()                  { r.skip = "SkipNow"; runtime.Goexit() }

func run(tb testing.TB, code func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		code(tb)
	}()
	<-done
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // rendered
		wantErr bool   // a protocol or read error, not an error reply
	}{
		{name: "simple", in: "+OK\r\n", want: "OK"},
		{name: "empty simple", in: "+\r\n", want: ""},
		{name: "error reply", in: "-ERR boom\r\n", want: "ERR boom"},
		{name: "integer", in: ":-7\r\n", want: "-7"},
		{name: "bulk", in: "$5\r\na\r\nbc\r\n", want: "a\r\nbc"},
		{name: "empty bulk", in: "$0\r\n\r\n", want: ""},
		{name: "nil bulk", in: "$-1\r\n", want: ""},
		{name: "nil array", in: "*-1\r\n", want: ""},
		{name: "empty array", in: "*0\r\n", want: ""},
		{name: "nested array", in: "*3\r\n:1\r\n*2\r\n+a\r\n$-1\r\n$1\r\nb\r\n", want: "1\na\n\nb"},
		{name: "bare LF", in: "+OK\n", wantErr: true},
		{name: "no type", in: "\r\n", wantErr: true},
		{name: "unknown type", in: "%1\r\n", wantErr: true},
		{name: "bad integer", in: ":x\r\n", wantErr: true},
		{name: "negative bulk length", in: "$-2\r\n", wantErr: true},
		{name: "huge bulk length", in: "$999999999999\r\n", wantErr: true},
		{name: "bulk without CRLF", in: "$1\r\nabc", wantErr: true},
		{name: "short bulk", in: "$10\r\nabc\r\n", wantErr: true},
		{name: "huge array", in: "*99999999\r\n", wantErr: true},
		{name: "short array", in: "*2\r\n+a\r\n", wantErr: true},
		{name: "too deep", in: strings.Repeat("*1\r\n", maxDepth+1) + "+a\r\n", wantErr: true},
		{name: "line too long", in: "+" + strings.Repeat("a", maxLine) + "\r\n", wantErr: true},
		{name: "empty input", in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reply, err := readReply(bufio.NewReaderSize(strings.NewReader(tc.in), maxLine), 0)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("readReply(%q) = %q, want an error", tc.in, render(reply))
				}
				return
			}
			if err != nil || render(reply) != tc.want {
				t.Fatalf("readReply(%q) = %q, %v; want %q", tc.in, render(reply), err, tc.want)
			}
		})
	}
}

// FuzzReadReply checks that no input makes readReply panic, and that it
// parses the same whether the bytes arrive at once or one by one.
func FuzzReadReply(f *testing.F) {
	for _, seed := range []string{
		"+OK\r\n", "-ERR x\r\n", ":1\r\n", "$3\r\nabc\r\n", "$-1\r\n",
		"*2\r\n$1\r\na\r\n*1\r\n:2\r\n", "*-1\r\n", "$2\r\na", "*1\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		whole, errWhole := readReply(bufio.NewReaderSize(bytes.NewReader(in), maxLine), 0)
		bytewise, errBytewise := readReply(bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(in)), maxLine), 0)
		if (errWhole == nil) != (errBytewise == nil) || render(whole) != render(bytewise) {
			t.Fatalf("at once: %q, %v; byte by byte: %q, %v", render(whole), errWhole, render(bytewise), errBytewise)
		}
	})
}

// FuzzCommandRoundTrip checks that a command encoded by appendCommand
// parses back to its arguments.
func FuzzCommandRoundTrip(f *testing.F) {
	f.Add("SET", "k", "v")
	f.Add("", "\r\n", "$1\r\n")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		args := []string{a, b, c}
		reply, err := readReply(bufio.NewReaderSize(bytes.NewReader(appendCommand(nil, args)), maxLine), 0)
		if err != nil {
			t.Fatal(err)
		}
		elems, ok := reply.([]any)
		if !ok || len(elems) != len(args) {
			t.Fatalf("got %#v, want %q", reply, args)
		}
		for i, e := range elems {
			if e != args[i] {
				t.Fatalf("element %d = %#v, want %q", i, e, args[i])
			}
		}
	})
}

func TestTailBuffer(t *testing.T) {
	var w tailBuffer
	w.Write([]byte("start "))
	w.Write(bytes.Repeat([]byte("x"), tailKeep))
	w.Write([]byte(" end"))
	if got := w.tail(4); got != " end" {
		t.Errorf("tail(4) = %q, want %q", got, " end")
	}
	if len(w.b) != tailKeep || w.contains("start") {
		t.Errorf("kept %d bytes (start kept: %v), want the last %d", len(w.b), w.contains("start"), tailKeep)
	}
	w.Write(bytes.Repeat([]byte("y"), 2*tailKeep))
	if len(w.b) != tailKeep || w.contains("x") {
		t.Errorf("after a huge write kept %d bytes, want the last %d", len(w.b), tailKeep)
	}
}

func TestSlotRanges(t *testing.T) {
	node := []any{"127.0.0.1", int64(7000), "id"}
	tests := []struct {
		name    string
		reply   any
		want    int
		wantErr bool
	}{
		{name: "all", reply: []any{
			[]any{int64(0), int64(5460), node},
			[]any{int64(5461), int64(16383), node},
		}, want: clusterSlots},
		{name: "overlap counted once", reply: []any{
			[]any{int64(0), int64(10), node},
			[]any{int64(5), int64(20), node},
		}, want: 21},
		{name: "none", reply: []any{}, want: 0},
		{name: "error reply", reply: replyError("CLUSTERDOWN"), wantErr: true},
		{name: "out of range", reply: []any{[]any{int64(0), int64(clusterSlots), node}}, wantErr: true},
		{name: "reversed", reply: []any{[]any{int64(9), int64(1), node}}, wantErr: true},
		{name: "short entry", reply: []any{[]any{int64(0), int64(1)}}, wantErr: true},
		{name: "not an array", reply: "x", wantErr: true},
		{name: "bad master", reply: []any{[]any{int64(0), int64(1), []any{"127.0.0.1"}}}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ranges, err := slotRanges(tc.reply)
			if got := countSlots(ranges); (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("countSlots(slotRanges) = %d, %v; want %d (error: %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestClusterEnabled(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"--cluster-enabled", "yes"}, true},
		{[]string{"--maxmemory", "1mb", "--cluster-enabled", "YES"}, true},
		{[]string{"--cluster-enabled", "no"}, false},
		{[]string{"--cluster-enabled"}, false},
	}
	for _, tc := range tests {
		if got := clusterEnabled(tc.args); got != tc.want {
			t.Errorf("clusterEnabled(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}
