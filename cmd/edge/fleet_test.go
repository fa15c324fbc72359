package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// rollingDrain is each node's --drain-timeout.
	rollingDrain = 5 * time.Second
	// rollingExit bounds how long a node may take to exit after SIGTERM.
	rollingExit = rollingDrain + 5*time.Second
)

// waitFor polls cond until it holds or ctx ends, and reports whether it
// held.
func waitFor(ctx context.Context, cond func() bool) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return cond()
		case <-tick.C:
		}
	}
	return true
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}

// fleetNode is one edge process of a test fleet. It keeps its address
// across restarts, so that clients find a restarted node where it was.
// Only the test goroutine calls its methods except base.
type fleetNode struct {
	name string
	addr string   // "127.0.0.1:PORT"
	bin  string   // the edge binary
	args []string // its arguments after --listen
	out  syncBuffer
	proc *nodeProc // the running process, nil when stopped
	runs int       // how many times it was started
}

// nodeProc is one run of a node.
type nodeProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait has returned
	err  error         // cmd.Wait's result; read it only after done is closed
}

// startFleetNode starts a node on a fixed free port and waits until it is
// ready. At cleanup the node is killed if it still runs, and its output
// is shown if the test failed.
func startFleetNode(ctx context.Context, t *testing.T, client *http.Client, bin, name string, args ...string) *fleetNode {
	t.Helper()
	n := &fleetNode{name: name, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(fixedPort(t))), bin: bin, args: args}
	t.Cleanup(func() {
		if n.proc != nil {
			n.proc.kill()
		}
		if t.Failed() {
			t.Logf("%s (%s) output:\n%s", n.name, n.addr, n.out.String())
		}
	})
	n.start(ctx, t, client)
	return n
}

// fixedPort returns a loopback port that is free now. It picks one below
// the kernel's ephemeral range when it can: no outgoing connection of the
// test can then take the port while its node is down.
func fixedPort(t *testing.T) int {
	t.Helper()
	low := 32768 // Linux's default; below macOS's and Windows' ranges too
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	for range 100 {
		port := 0 // any free port, when the range leaves no room below it
		if low > 11000 {
			port = 10000 + rand.IntN(low-10000)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		return port
	}
	t.Fatal("no free loopback port")
	return 0
}

// base returns the node's base URL.
func (n *fleetNode) base() string { return "http://" + n.addr }

// start runs the node and waits until GET /readyz answers 200.
func (n *fleetNode) start(ctx context.Context, t *testing.T, client *http.Client) {
	t.Helper()
	n.runs++
	fmt.Fprintf(&n.out, "--- run %d\n", n.runs)
	cmd := exec.Command(n.bin, append([]string{"--listen", n.addr}, n.args...)...)
	cmd.Stdout, cmd.Stderr = &n.out, &n.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	n.proc = p
	ready := func() bool {
		select {
		case <-p.done:
			return true
		default:
		}
		probe, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(probe, http.MethodGet, n.base()+"/readyz", nil)
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if !waitFor(ctx, ready) {
		t.Fatalf("%s not ready: %v", n.name, ctx.Err())
	}
	select {
	case <-p.done:
		t.Fatalf("%s exited at start: %v", n.name, p.err)
	default:
	}
}

// restart sends SIGTERM, requires a clean exit (code 0) within
// rollingExit, and starts the node again on the same address.
func (n *fleetNode) restart(ctx context.Context, t *testing.T, client *http.Client) {
	t.Helper()
	p := n.proc
	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", n.name, err)
	}
	timer := time.NewTimer(rollingExit)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		t.Fatalf("%s still running %v after SIGTERM", n.name, rollingExit)
	}
	if p.err != nil {
		t.Fatalf("%s exited after SIGTERM with %v, want code 0", n.name, p.err)
	}
	n.proc = nil
	drained := time.Since(began)
	n.start(ctx, t, client)
	t.Logf("%s drained in %v, ready again %v later", n.name, drained.Round(time.Millisecond), (time.Since(began) - drained).Round(time.Millisecond))
}

// kill ends the node at once with SIGKILL, as a crash would: no drain, no
// word to its clients, which find their connections reset.
func (n *fleetNode) kill() {
	n.proc.kill()
	n.proc = nil
}

// kill ends p at once, by its pid, and waits for it.
func (p *nodeProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}
