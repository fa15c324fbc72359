package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// needPeer fails the test when CI is set, and skips it otherwise, for a
// peer server that is not installed; msg says how to install it.
func needPeer(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// freeLoopbackAddr returns a loopback address with a port free a moment
// ago, for a peer server that cannot be handed a listener.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startPeer starts the peer server cmd, stops it (SIGTERM, then SIGKILL
// after 10 s) when the test ends, and returns its pid once it accepts
// connections on addr. It fails the test, with what logs returns, if the
// server exits first or does not accept within 10 s.
func startPeer(t *testing.T, cmd *exec.Cmd, addr string, logs func() string) int {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return cmd.Process.Pid
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited: %v\n%s", cmd.Path, err, logs())
		case <-ctx.Done():
			t.Fatalf("%s does not accept connections on %s: %v", cmd.Path, addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
