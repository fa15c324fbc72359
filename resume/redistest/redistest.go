// Package redistest is a test helper, in the manner of net/http/httptest:
// it starts real redis-server processes for tests. Only tests import it;
// it is public because the tests of several packages (cmd/edge, resume,
// tls/redisstore, transports) share it.
//
// It starts a single server (Start), a local Redis Cluster (StartCluster
// for masters only, StartClusterWith for masters with replicas) or a
// Sentinel (StartSentinel), each server a child process listening on a free
// 127.0.0.1 port with its own temporary directory (from t.TempDir), and
// stopped in t.Cleanup.
//
// Servers persist with AOF (appendfsync always) and take no RDB snapshots,
// so what a test wrote before Server.Restart, or before Server.Kill and
// Restart, is there after it. Start(t, "--appendonly", "no") starts one
// that persists nothing: a Kill and Restart then come back empty, as a
// Redis without persistence does after a crash. Cluster.Failover and
// Cluster.WaitMaster drive and await a replica's takeover; Cluster.MoveSlot
// (or BeginMove, SlotMove.Migrate and Finish, to hold a slot half
// migrated) reshards as redis-cli does; Server.Pause and Continue freeze
// and wake a server (SIGSTOP, SIGCONT). Server.Do is
// a minimal RESP2 client for poking a server from a test (FLUSHALL, CLIENT
// KILL, PUBLISH); the code under test should use its real client:
//
//	srv := redistest.Start(t)
//	r, err := resume.NewRedis(srv.URL(), cfg, logger)
//	...
//	if _, err := srv.Do(t, "FLUSHALL"); err != nil {
//		t.Fatal(err)
//	}
//
// When redis-server (or, for a cluster, redis-cli) is not installed, the
// helpers skip the test with a message saying how to install it; when the
// CI environment variable is non-empty they fail it instead, so CI never
// silently loses its Redis coverage.
//
// Start, StartCluster and StartClusterWith must be called from the
// goroutine running the test, as must Stop, Kill, Restart, Pause and
// Continue, which must not run concurrently with each other, and the
// Cluster and SlotMove methods. Do is safe for
// concurrent use.
package redistest

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long Start and Restart wait for PING.
	readyTimeout = 10 * time.Second
	// doTimeout is the deadline of one Do round trip, dial included.
	doTimeout = 10 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// clusterTimeout bounds redis-cli --cluster create, and separately
	// the wait for every node to report a healthy cluster (and for a
	// failover to complete).
	clusterTimeout = 30 * time.Second
	// failoverRetry is how long Failover waits before it asks again: a
	// manual failover that Redis gave up (after 5s) changed nothing.
	failoverRetry = 8 * time.Second
	// defaultNodeTimeout is cluster-node-timeout when ClusterOptions
	// leaves it zero.
	defaultNodeTimeout = 2 * time.Second
	// startAttempts is how many free ports Start tries when the one it
	// picked is taken before redis-server binds it.
	startAttempts = 5

	clusterSlots   = 16384
	clusterBusPort = 10000 // the cluster bus listens on port+clusterBusPort

	maxPollWait = 100 * time.Millisecond // longest pause between readiness polls

	tailKeep = 64 << 10 // bytes of server output kept per process
	tailShow = 4 << 10  // bytes of it shown in a failure message

	// Read limits of the RESP client. maxBulk is Redis's own default
	// proto-max-bulk-len.
	maxLine  = 64 << 10
	maxBulk  = 512 << 20
	maxArray = 1 << 20
	maxDepth = 16
)

// errPortTaken reports that another process got the port between picking
// it and redis-server binding it; Start then retries with a new port.
var errPortTaken = errors.New("redistest: port taken")

// Server is a redis-server process started for a test, on a free loopback
// port with its own temp dir. Create it with Start; the zero value is not
// usable.
type Server struct {
	// Addr is the server's "127.0.0.1:PORT" address. It stays the same
	// across Restart.
	Addr string

	port int
	dir  string   // --dir: the AOF and, in a cluster, nodes.conf
	bin  string   // path of redis-server
	args []string // redis-server's arguments, the same on every (re)start

	// proc is the running process, nil once stopped. It is only touched
	// by Start, Stop and Restart, which run on the test goroutine.
	proc *process
}

// process is one run of redis-server.
type process struct {
	cmd  *exec.Cmd
	out  *tailBuffer   // its stdout and stderr
	done chan struct{} // closed when cmd.Wait has returned
	err  error         // cmd.Wait's result; read it only after done is closed
}

// Start starts redis-server for t with persistence that survives a restart
// (appendonly yes, appendfsync always, no RDB snapshots, dir = t.TempDir()),
// bound to 127.0.0.1 with protected mode off; args are appended to the
// command line and so override those settings (e.g. "--cluster-enabled",
// "yes"). It returns once the server answers PING, waiting up to 10s, and
// registers t.Cleanup to stop it. If the picked port is taken before
// redis-server binds it, Start tries another, up to 5 times.
//
// When redis-server is not installed, Start fails t if the environment
// variable CI is non-empty and skips it otherwise.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return start(t, lookPath(t, "redis-server"), args)
}

func start(t testing.TB, bin string, extra []string) *Server {
	t.Helper()
	cluster := clusterEnabled(extra)
	var (
		err error
		p   *process
	)
	for range startAttempts {
		var port int
		if port, err = freePort(cluster); err != nil {
			break
		}
		// A fresh dir per attempt, so that a failed attempt leaves
		// nothing (such as a cluster's nodes.conf) to the next.
		dir := t.TempDir()
		s := &Server{
			Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			port: port,
			dir:  dir,
			bin:  bin,
			args: append([]string{
				"--port", strconv.Itoa(port),
				"--bind", "127.0.0.1",
				"--protected-mode", "no",
				"--dir", dir,
				"--daemonize", "no",
				"--save", "",
				"--appendonly", "yes",
				"--appendfsync", "always",
			}, extra...),
		}
		// Registered after t.TempDir's own cleanup, so it runs before
		// the directory is removed.
		t.Cleanup(func() { s.Stop(t) })
		if p, err = s.launch(); err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) {
			break
		}
		t.Logf("redistest: %v; retrying on another port", err)
	}
	t.Fatalf("redistest: start redis-server: %v%s", err, p.tail())
	return nil
}

// clusterEnabled reports whether args turn on cluster mode, in which case
// the cluster bus port must be free too.
func clusterEnabled(args []string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--cluster-enabled" && strings.EqualFold(args[i+1], "yes") {
			return true
		}
	}
	return false
}

// lookPath finds a Redis binary, or skips t (fails it under CI) without it.
func lookPath(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatal(name + " not installed; .ci/run installs it")
	}
	t.Skipf("redistest: %s not installed; install it with `apt-get install redis-server` (with CI set, this fails instead)", name)
	return ""
}

// freePort returns a loopback port that was free a moment ago and, for a
// cluster node, whose cluster bus port (port+10000) was free too.
func freePort(cluster bool) (int, error) {
	var err error
	for range 20 {
		var port int
		if port, err = listenFree(0); err != nil {
			return 0, err
		}
		if !cluster {
			return port, nil
		}
		if port+clusterBusPort > 65535 {
			continue
		}
		if _, err = listenFree(port + clusterBusPort); err == nil {
			return port, nil
		}
	}
	return 0, fmt.Errorf("redistest: no free port pair for a cluster node: %w", err)
}

// listenFree listens on 127.0.0.1:port, closes, and returns the port.
func listenFree(port int) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return 0, fmt.Errorf("redistest: unexpected listener address %v", ln.Addr())
	}
	return addr.Port, nil
}

// launch starts redis-server with s.args and waits until it answers. On
// failure the process is gone, and the returned process (nil only if it
// could not be executed at all) holds its output.
func (s *Server) launch() (*process, error) {
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	out := &tailBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Should a forked child (an AOF rewrite) outlive the server holding
	// the output pipe, do not let Wait hang on it.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redistest: run %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := s.waitReady(p); err != nil {
		p.kill()
		return p, err
	}
	s.proc = p
	return p, nil
}

// waitReady polls PING until p answers it, p exits, or readyTimeout passes.
func (s *Server) waitReady(p *process) error {
	deadline := time.Now().Add(readyTimeout)
	wait := 2 * time.Millisecond
	var err error
	for {
		var pid int
		if pid, err = s.pingPID(soonest(deadline, time.Now().Add(time.Second))); err == nil {
			if pid == p.cmd.Process.Pid {
				return nil
			}
			// Someone else's redis-server got the port first; ours
			// is about to fail to bind it.
			return fmt.Errorf("%w: %s is answered by another redis-server (pid %d)", errPortTaken, s.Addr, pid)
		}
		timer := time.NewTimer(wait)
		select {
		case <-p.done:
			timer.Stop()
			if p.out.contains("Address already in use") {
				return fmt.Errorf("%w: %s: redis-server could not bind it", errPortTaken, s.Addr)
			}
			return fmt.Errorf("redistest: redis-server on %s exited before answering PING: %v", s.Addr, p.err)
		case <-timer.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: redis-server on %s did not answer PING within %v: %w", s.Addr, readyTimeout, err)
		}
		wait = min(2*wait, maxPollWait)
	}
}

// pingPID sends PING and, once it is answered, returns the answering
// server's process id, so that Start cannot mistake another server on the
// same port for its own.
func (s *Server) pingPID(deadline time.Time) (int, error) {
	c, err := dial(s.Addr, deadline)
	if err != nil {
		return 0, err
	}
	defer c.close()
	reply, err := c.do("PING")
	if err != nil {
		return 0, err
	}
	if reply != "PONG" {
		return 0, fmt.Errorf("redistest: PING answered %q", render(reply))
	}
	reply, err = c.do("INFO", "server")
	if err != nil {
		return 0, err
	}
	info, ok := reply.(string)
	if !ok {
		return 0, fmt.Errorf("redistest: INFO server answered %q", render(reply))
	}
	field, ok := infoField(info, "process_id")
	if !ok {
		return 0, errors.New("redistest: INFO server has no process_id")
	}
	return strconv.Atoi(field)
}

// soonest returns the earlier of a and b.
func soonest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// infoField returns the value of name in an INFO or CLUSTER INFO reply.
func infoField(info, name string) (string, bool) {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), name+":"); ok {
			return v, true
		}
	}
	return "", false
}

// kill ends p at once and waits for it.
func (p *process) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill() // fails only if it has just exited
	<-p.done
}

// tail returns the end of p's output for a failure message.
func (p *process) tail() string {
	if p == nil {
		return ""
	}
	return "\nredis-server output (tail):\n" + p.out.tail(tailShow)
}

// URL returns "redis://127.0.0.1:PORT".
func (s *Server) URL() string { return "redis://" + s.Addr }

// Stop stops the server (SIGTERM, then SIGKILL after 5s) and waits for the
// process to exit, waking it first if Pause froze it. It is safe to call twice, and on a server that has
// exited by itself (e.g. after SHUTDOWN); Stop fails t if the server had
// exited with an error before it was asked to stop.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	p := s.proc
	if p == nil {
		return
	}
	s.proc = nil
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("redistest: redis-server on %s exited before Stop: %v%s", s.Addr, p.err, p.tail())
		}
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // fails only if it has just exited
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a paused server handles the SIGTERM now
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case <-p.done:
		return
	case <-timer.C:
	}
	t.Logf("redistest: redis-server on %s still running %v after SIGTERM; killing it%s", s.Addr, stopGrace, p.tail())
	p.kill()
}

// Kill ends the server at once with SIGKILL, as a crash would, and waits
// for the process to exit: what it had not persisted is gone. Restart
// starts it again. Kill does nothing on a stopped server.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if s.proc == nil {
		return
	}
	s.proc.kill()
	s.proc = nil
}

// Restart stops the server and starts it again on the same port and dir
// (so data persisted with AOF survives), waiting until it answers PING. It
// also starts a server that Stop stopped. Restart fails t if the server
// cannot start, e.g. because another process took its port meanwhile.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	if p, err := s.launch(); err != nil {
		t.Fatalf("redistest: restart redis-server on %s: %v%s", s.Addr, err, p.tail())
	}
}

// Do sends one command (args[0] the command name, as redis-cli takes it)
// over a new connection and returns the reply rendered as a string: simple
// and bulk strings as they are, integers in decimal, arrays as their
// elements joined by "\n" (nested arrays likewise), nil as "". An error
// reply is returned as an error whose text is Redis's, e.g. "MOVED 3999
// 127.0.0.1:7001".
//
// The whole round trip has a 10s deadline. If the server cannot be reached
// or answers garbage, Do marks t failed (t.Errorf) and returns the error.
// Do is safe for concurrent use.
func (s *Server) Do(t testing.TB, args ...string) (string, error) {
	t.Helper()
	if len(args) == 0 {
		err := errors.New("redistest: Do without a command")
		t.Error(err)
		return "", err
	}
	reply, err := s.do(time.Now().Add(doTimeout), args...)
	if err != nil {
		t.Errorf("redistest: %s on %s: %v", args[0], s.Addr, err)
		return "", err
	}
	if e, ok := reply.(replyError); ok {
		return "", e
	}
	return render(reply), nil
}

// do sends one command on a new connection and returns the parsed reply;
// an error reply is a replyError value, not an error.
func (s *Server) do(deadline time.Time, args ...string) (any, error) {
	c, err := dial(s.Addr, deadline)
	if err != nil {
		return nil, err
	}
	defer c.close()
	return c.do(args...)
}

// conn is a RESP2 connection used by one goroutine.
type conn struct {
	nc net.Conn
	r  *bufio.Reader
}

func dial(addr string, deadline time.Time) (*conn, error) {
	d := net.Dialer{Deadline: deadline}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := nc.SetDeadline(deadline); err != nil {
		nc.Close()
		return nil, err
	}
	return &conn{nc: nc, r: bufio.NewReaderSize(nc, maxLine)}, nil
}

func (c *conn) close() { c.nc.Close() }

func (c *conn) do(args ...string) (any, error) {
	if _, err := c.nc.Write(appendCommand(nil, args)); err != nil {
		return nil, err
	}
	return readReply(c.r, 0)
}

// appendCommand appends args to b as a RESP array of bulk strings.
func appendCommand(b []byte, args []string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, "\r\n"...)
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// replyError is an error reply; its text is Redis's, without the '-'.
type replyError string

func (e replyError) Error() string { return string(e) }

// errProtocol reports a reply that is not valid RESP2.
var errProtocol = errors.New("redistest: bad RESP reply")

// readReply reads one RESP2 reply: a string (simple or bulk), an int64, a
// replyError, nil (null bulk string or array) or a []any of those. depth is
// the array nesting so far. Lines are limited by r's buffer size, which
// must be at least maxLine.
func readReply(r *bufio.Reader, depth int) (any, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("%w: line longer than %d bytes", errProtocol, r.Size())
	}
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: malformed line %q", errProtocol, line)
	}
	kind, body := line[0], string(line[1:len(line)-2])
	switch kind {
	case '+':
		return body, nil
	case '-':
		return replyError(body), nil
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: integer %q", errProtocol, body)
		}
		return n, nil
	case '$':
		n, err := strconv.Atoi(body)
		switch {
		case err != nil || n < -1 || n > maxBulk:
			return nil, fmt.Errorf("%w: bulk length %q", errProtocol, body)
		case n == -1:
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return nil, fmt.Errorf("%w: bulk string not ended by CRLF", errProtocol)
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		switch {
		case err != nil || n < -1 || n > maxArray:
			return nil, fmt.Errorf("%w: array length %q", errProtocol, body)
		case n == -1:
			return nil, nil
		case depth >= maxDepth:
			return nil, fmt.Errorf("%w: arrays nested deeper than %d", errProtocol, maxDepth)
		}
		elems := make([]any, 0, min(n, 1024))
		for range n {
			e, err := readReply(r, depth+1)
			if err != nil {
				return nil, err
			}
			elems = append(elems, e)
		}
		return elems, nil
	default:
		return nil, fmt.Errorf("%w: unknown type %q", errProtocol, kind)
	}
}

// render renders a reply the way Do documents.
func render(reply any) string {
	switch v := reply.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case replyError:
		return string(v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = render(e)
		}
		return strings.Join(parts, "\n")
	default: // nil
		return ""
	}
}

// tailBuffer keeps the last tailKeep bytes written to it. It is safe for
// concurrent use.
type tailBuffer struct {
	mu sync.Mutex // mu guards b
	b  []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if len(p) > tailKeep {
		p = p[len(p)-tailKeep:]
	}
	if over := len(w.b) + len(p) - tailKeep; over > 0 {
		w.b = append(w.b[:0], w.b[over:]...)
	}
	w.b = append(w.b, p...)
	return n, nil
}

// tail returns the last n bytes written.
func (w *tailBuffer) tail(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b[max(0, len(w.b)-n):])
}

func (w *tailBuffer) contains(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Contains(w.b, []byte(s))
}

// Cluster is a local Redis Cluster on loopback ports, for tests. Create it
// with StartCluster or StartClusterWith; its nodes are stopped in
// t.Cleanup.
type Cluster struct {
	// Nodes are the cluster's servers, in the order given to redis-cli
	// --cluster create: first the masters (which it assigns slots in that
	// order), then their replicas. A failover changes who is master:
	// MasterOf and ReplicasOf tell.
	Nodes []*Server
}

// ClusterOptions configures StartClusterWith.
type ClusterOptions struct {
	// Masters is how many masters share the slots; at least 3.
	Masters int
	// Replicas is how many replicas each master has; zero means none.
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a node may be
	// unreachable before the others count it as failing, and so roughly
	// how soon a replica takes over from a master that died. Zero means
	// 2s. Under a second, a loaded machine may see failovers nobody asked
	// for.
	NodeTimeout time.Duration
}

// StartCluster starts a cluster of n (>= 3) masters without replicas:
// StartClusterWith(t, ClusterOptions{Masters: n}).
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterOptions{Masters: n})
}

// StartClusterWith starts opts.Masters*(1+opts.Replicas) cluster-enabled
// servers (each with its own cluster-config-file in its temp dir), creates
// the cluster with `redis-cli --cluster create ... --cluster-replicas R
// --cluster-yes`, and waits (deadline 30s, polling) until CLUSTER INFO
// reports cluster_state:ok on every node, every node's CLUSTER SLOTS covers
// all 16384 slots, and every replica's link to its master is up. Replicas
// may always take over (cluster-replica-validity-factor 0) and never
// migrate to another master; they sync without a delay. Without
// redis-server or redis-cli it skips t, or fails it when the environment
// variable CI is non-empty.
func StartClusterWith(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if opts.Masters < 3 {
		t.Fatalf("redistest: a cluster needs at least 3 masters, not %d", opts.Masters)
	}
	if opts.Replicas < 0 {
		t.Fatalf("redistest: %d replicas per master", opts.Replicas)
	}
	timeout := cmp.Or(opts.NodeTimeout, defaultNodeTimeout)
	server := lookPath(t, "redis-server")
	cli := lookPath(t, "redis-cli")
	c := &Cluster{}
	for range opts.Masters * (1 + opts.Replicas) {
		c.Nodes = append(c.Nodes, start(t, server, []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", // relative to --dir
			"--cluster-node-timeout", strconv.FormatInt(timeout.Milliseconds(), 10),
			"--cluster-replica-validity-factor", "0",
			"--cluster-allow-replica-migration", "no",
			"--repl-diskless-sync-delay", "0",
		}))
	}
	c.create(t, cli, opts.Replicas)
	c.waitHealthy(t, nil)
	return c
}

// Addrs returns the nodes' "127.0.0.1:PORT" addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr
	}
	return addrs
}

// create joins the nodes into a cluster with redis-cli.
func (c *Cluster) create(t testing.TB, cli string, replicas int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	args := slices.Concat([]string{"--cluster", "create"}, c.Addrs(),
		[]string{"--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes"})
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redistest: %s %s: %v\n%s%s", cli, strings.Join(args, " "), err, out, c.tails())
	}
}

// running returns the nodes that run: not stopped or killed by the test.
func (c *Cluster) running() []*Server {
	var up []*Server
	for _, s := range c.Nodes {
		if s.proc != nil {
			up = append(up, s)
		}
	}
	return up
}

// waitHealthy polls every running node until all report a healthy cluster
// and, when master is not nil, all see it serve slots; it fails t after
// 30s.
func (c *Cluster) waitHealthy(t testing.TB, master *Server) {
	t.Helper()
	if err := c.healthyBy(time.Now().Add(clusterTimeout), master); err != nil {
		t.Fatal(err)
	}
}

// healthyBy is waitHealthy until deadline, returning why not instead of
// failing.
func (c *Cluster) healthyBy(deadline time.Time, master *Server) error {
	start := time.Now()
	wait := 10 * time.Millisecond
	for {
		var problems []string
		for _, s := range c.running() {
			select {
			case <-s.proc.done:
				return fmt.Errorf("redistest: cluster node %s exited: %v%s", s.Addr, s.proc.err, s.proc.tail())
			default:
			}
			if err := s.clusterHealthy(deadline, master); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", s.Addr, err))
			}
		}
		if len(problems) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: cluster not healthy after %v:\n%s%s", time.Since(start).Round(time.Second), strings.Join(problems, "\n"), c.tails())
		}
		time.Sleep(wait) // polling: nothing to wait on but the nodes' own state
		wait = min(2*wait, maxPollWait)
	}
}

// MasterOf returns the node that serves key's slot, as the first running
// node sees it.
func (c *Cluster) MasterOf(t testing.TB, key string) *Server {
	t.Helper()
	up := c.running()
	if len(up) == 0 {
		t.Fatal("redistest: no cluster node is running")
	}
	deadline := time.Now().Add(doTimeout)
	slot, err := up[0].do(deadline, "CLUSTER", "KEYSLOT", key)
	if err != nil {
		t.Fatalf("redistest: CLUSTER KEYSLOT on %s: %v", up[0].Addr, err)
	}
	slots, err := up[0].do(deadline, "CLUSTER", "SLOTS")
	if err != nil {
		t.Fatalf("redistest: CLUSTER SLOTS on %s: %v", up[0].Addr, err)
	}
	n, ok := slot.(int64)
	if !ok {
		t.Fatalf("redistest: CLUSTER KEYSLOT %s answered %q", key, render(slot))
	}
	addr, err := slotMaster(slots, n)
	if err != nil {
		t.Fatalf("redistest: %s: %v", up[0].Addr, err)
	}
	for _, s := range c.Nodes {
		if s.Addr == addr {
			return s
		}
	}
	t.Fatalf("redistest: slot %d of %s is served by %s, not a node of this cluster", n, key, addr)
	return nil
}

// ReplicasOf returns the running nodes that replicate master.
func (c *Cluster) ReplicasOf(t testing.TB, master *Server) []*Server {
	t.Helper()
	var replicas []*Server
	for _, s := range c.running() {
		role, err := s.do(time.Now().Add(doTimeout), "ROLE")
		if err != nil {
			t.Fatalf("redistest: ROLE on %s: %v", s.Addr, err)
		}
		if r, ok := role.([]any); ok && len(r) >= 3 && r[0] == "slave" && r[2] == int64(master.port) {
			replicas = append(replicas, s)
		}
	}
	return replicas
}

// Failover makes replica take over its master's slots with CLUSTER
// FAILOVER, a manual failover in which the master stops taking writes
// until the replica has caught up, so nothing acknowledged is lost; the old
// master becomes its replica. It returns once every running node sees the
// replica serve the slots (deadline 30s). Redis gives a manual failover up
// after 5s when the master does not answer in time (a loaded machine);
// Failover then asks again.
func (c *Cluster) Failover(t testing.TB, replica *Server) {
	t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	for {
		// An error reply is fine if the last request won after all.
		if _, err := replica.Do(t, "CLUSTER", "FAILOVER"); err != nil && !replica.isMaster() {
			t.Fatalf("redistest: CLUSTER FAILOVER on %s: %v", replica.Addr, err)
		}
		err := c.healthyBy(soonest(deadline, time.Now().Add(failoverRetry)), replica)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		t.Logf("redistest: CLUSTER FAILOVER on %s did not complete; asking again", replica.Addr)
	}
}

// isMaster reports whether s answers ROLE as a master.
func (s *Server) isMaster() bool {
	role, err := s.do(time.Now().Add(doTimeout), "ROLE")
	r, _ := role.([]any)
	return err == nil && len(r) > 0 && r[0] == "master"
}

// WaitMaster waits (deadline 30s, polling) until every running node
// reports a healthy cluster in which s serves slots: after Failover, or
// after a Kill of s's master once s has taken over.
func (c *Cluster) WaitMaster(t testing.TB, s *Server) {
	t.Helper()
	c.waitHealthy(t, s)
}

// clusterHealthy reports why s does not yet see a healthy cluster, if so:
// cluster_state:ok, all slots covered, s itself a master serving slots or
// a replica whose link to its master is up, and, when master is not nil,
// master serving slots.
func (s *Server) clusterHealthy(deadline time.Time, master *Server) error {
	c, err := dial(s.Addr, soonest(deadline, time.Now().Add(time.Second)))
	if err != nil {
		return err
	}
	defer c.close()
	reply, err := c.do("CLUSTER", "INFO")
	if err != nil {
		return err
	}
	info, ok := reply.(string)
	if !ok {
		return fmt.Errorf("CLUSTER INFO answered %q", render(reply))
	}
	if state, _ := infoField(info, "cluster_state"); state != "ok" {
		return fmt.Errorf("cluster_state:%s", state)
	}
	reply, err = c.do("CLUSTER", "SLOTS")
	if err != nil {
		return err
	}
	ranges, err := slotRanges(reply)
	if err != nil {
		return err
	}
	if covered := countSlots(ranges); covered != clusterSlots {
		return fmt.Errorf("CLUSTER SLOTS covers %d of %d slots", covered, clusterSlots)
	}
	serves := func(addr string) bool {
		return slices.ContainsFunc(ranges, func(r slotRange) bool { return r.master == addr })
	}
	if master != nil && !serves(master.Addr) {
		return fmt.Errorf("%s serves no slots yet", master.Addr)
	}
	if reply, err = c.do("ROLE"); err != nil {
		return err
	}
	role, _ := reply.([]any)
	switch {
	case len(role) >= 4 && role[0] == "slave":
		if role[3] != "connected" {
			return fmt.Errorf("replica link to %v:%v is %v", role[1], role[2], role[3])
		}
	case len(role) >= 1 && role[0] == "master":
		if !serves(s.Addr) {
			return errors.New("a master without slots")
		}
	default:
		return fmt.Errorf("ROLE answered %q", render(reply))
	}
	return nil
}

// slotRange is one entry of a CLUSTER SLOTS reply: slots lo to hi served
// by the master at "IP:PORT".
type slotRange struct {
	lo, hi int64
	master string
}

// slotRanges parses a CLUSTER SLOTS reply.
func slotRanges(reply any) ([]slotRange, error) {
	if e, ok := reply.(replyError); ok {
		return nil, e
	}
	entries, ok := reply.([]any)
	if !ok {
		return nil, fmt.Errorf("CLUSTER SLOTS answered %q", render(reply))
	}
	ranges := make([]slotRange, 0, len(entries))
	for _, r := range entries {
		entry, ok := r.([]any)
		if !ok || len(entry) < 3 {
			return nil, fmt.Errorf("CLUSTER SLOTS entry %q", render(r))
		}
		lo, okLo := entry[0].(int64)
		hi, okHi := entry[1].(int64)
		if !okLo || !okHi || lo < 0 || lo > hi || hi >= clusterSlots {
			return nil, fmt.Errorf("CLUSTER SLOTS range %q", render(r))
		}
		node, _ := entry[2].([]any)
		if len(node) < 2 {
			return nil, fmt.Errorf("CLUSTER SLOTS master %q", render(entry[2]))
		}
		ip, okIP := node[0].(string)
		port, okPort := node[1].(int64)
		if !okIP || !okPort {
			return nil, fmt.Errorf("CLUSTER SLOTS master %q", render(entry[2]))
		}
		ranges = append(ranges, slotRange{lo, hi, net.JoinHostPort(ip, strconv.FormatInt(port, 10))})
	}
	return ranges, nil
}

// countSlots counts the distinct slots of ranges.
func countSlots(ranges []slotRange) int {
	var seen [clusterSlots]bool
	covered := 0
	for _, r := range ranges {
		for slot := r.lo; slot <= r.hi; slot++ {
			if !seen[slot] {
				seen[slot] = true
				covered++
			}
		}
	}
	return covered
}

// slotMaster returns the address of the master that serves slot in a
// CLUSTER SLOTS reply.
func slotMaster(reply any, slot int64) (string, error) {
	ranges, err := slotRanges(reply)
	if err != nil {
		return "", err
	}
	for _, r := range ranges {
		if r.lo <= slot && slot <= r.hi {
			return r.master, nil
		}
	}
	return "", fmt.Errorf("no master serves slot %d", slot)
}

// tails returns the end of every node's output, for a failure message.
func (c *Cluster) tails() string {
	var b strings.Builder
	for _, s := range c.Nodes {
		if s.proc != nil {
			fmt.Fprintf(&b, "\n--- %s%s", s.Addr, s.proc.tail())
		}
	}
	return b.String()
}

// URLs returns the nodes' URLs joined by commas, as --redis takes them.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// StartSentinel starts a Redis Sentinel (redis-server --sentinel) on a free
// loopback port that monitors master under name with quorum 1, and
// returns once it answers PING. It is stopped in t.Cleanup. Same skip rule
// as Start.
func StartSentinel(t testing.TB, master *Server, name string) *Server {
	t.Helper()
	bin := lookPath(t, "redis-server")
	port, err := freePort(false)
	if err != nil {
		t.Fatalf("redistest: sentinel: %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\n"+
		"sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 1000\n",
		port, dir, name, master.port, name)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatalf("redistest: sentinel: %v", err)
	}
	s := &Server{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		port: port, dir: dir, bin: bin,
		args: []string{conf, "--sentinel"},
	}
	t.Cleanup(func() { s.Stop(t) })
	if p, err := s.launch(); err != nil {
		t.Fatalf("redistest: start sentinel: %v%s", err, p.tail())
	}
	return s
}
