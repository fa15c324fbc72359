package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
)

// --print-config shows the effective configuration — every setting by its
// flag name, flags over the environment — with every secret masked.
func TestPrintConfig(t *testing.T) {
	env := map[string]string{"EDGE_HISTORY_SIZE": "5", "EDGE_JWT_SECRET": "env-secret-env-secret-env-secret-1"}
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--print-config", "--publish-key", "key-one,key-two",
		"--redis", "redis://user:redis-pass@127.0.0.1:6379/0", "--heartbeat", "40s"},
		func(k string) string { return env[k] }, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	newFlagSet(new(edge.Config), new(command)).VisitAll(func(f *flag.Flag) {
		if _, ok := got[f.Name]; !ok && f.Name != configFlag && f.Name != printConfigFlag {
			t.Errorf("--print-config lacks %q", f.Name)
		}
	})
	if len(got) != countFlags()-2 {
		t.Errorf("--print-config has %d keys, the command %d settings", len(got), countFlags()-2)
	}
	for key, want := range map[string]any{"history-size": 5.0, "heartbeat": "40s", "jwt-secret": masked,
		"redis": "redis://user:xxxxx@127.0.0.1:6379/0", "listen": "127.0.0.1:8080"} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	for _, secret := range []string{"key-one", "key-two", "redis-pass", "env-secret"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("--print-config shows the secret %q", secret)
		}
	}
}

func countFlags() int {
	n := 0
	newFlagSet(new(edge.Config), new(command)).VisitAll(func(*flag.Flag) { n++ })
	return n
}

// JSON logs at a chosen level; SIGUSR1 turns on debug logging at run time.
func TestLogFormatAndLevelSignal(t *testing.T) {
	bin := buildEdge(t)
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "warn")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 4096)
	if _, err := stdout.Read(buf); err != nil { // the banner: the edge is up
		t.Fatal(err)
	}
	if strings.Contains(stderr.String(), `"level":"INFO"`) {
		t.Errorf("info lines at --log-level warn:\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), `"msg":"log level changed","new_level":"DEBUG"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no JSON line about the level change:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling the process's output, not synchronisation
	}
}

// syncBuffer is a bytes.Buffer for a process's output read while written.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
