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
	newFlagSet(new(config), new(command)).VisitAll(func(f *flag.Flag) {
		if _, ok := got[f.Name]; !ok && f.Name != configFlag && f.Name != printConfigFlag {
			t.Errorf("--print-config lacks %q", f.Name)
		}
	})
	if len(got) != countFlags()-2 {
		t.Errorf("--print-config has %d keys, the command %d settings", len(got), countFlags()-2)
	}
	for key, want := range map[string]any{"history-size": 5.0, "heartbeat": "40s", "jwt-secret": masked,
		"redis": "redis://user:" + masked + "@127.0.0.1:6379/0", "listen": "127.0.0.1:8080"} {
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

// --print-config masks what in a URL may be a credential — the password
// of its userinfo (or a userinfo that is a token), every query value —
// in every setting that is a URL, and shows the rest of the URL.
func TestPrintConfigMasksURLCredentials(t *testing.T) {
	for _, tc := range []struct {
		name, flag, value, want string
		secrets                 []string
	}{
		{"JWKS URL with a password", "jwks-url", "https://edge:jwks-pass@id.example/jwks.json",
			"https://edge:" + masked + "@id.example/jwks.json", []string{"jwks-pass"}},
		{"JWKS URL with a token in the query", "jwks-url", "https://id.example/jwks.json?token=jwks-token&v=2",
			"https://id.example/jwks.json?token=" + masked + "&v=" + masked, []string{"jwks-token"}},
		{"JWKS URL with a token as userinfo", "jwks-url", "https://jwks-userinfo-token@id.example/jwks.json",
			"https://" + masked + "@id.example/jwks.json", []string{"jwks-userinfo-token"}},
		{"JWKS URL with a comma in the query", "jwks-url", "https://id.example/jwks?sig=abc,comma-secret",
			"https://id.example/jwks?sig=" + masked, []string{"comma-secret", "abc"}},
		{"JWKS URL without secrets", "jwks-url", "https://id.example/.well-known/jwks.json",
			"https://id.example/.well-known/jwks.json", nil},
		{"Redis with a password", "redis", "redis://default:redis-pass@10.0.0.1:6379/2",
			"redis://default:" + masked + "@10.0.0.1:6379/2", []string{"redis-pass"}},
		{"Redis with a password in the query", "redis", "rediss://10.0.0.1:6380/0?password=query-pass&protocol=3",
			"rediss://10.0.0.1:6380/0?password=" + masked + "&protocol=" + masked, []string{"query-pass"}},
		{"Redis Cluster nodes", "redis", "redis://:pass-one@10.0.0.1:7000,redis://:pass-two@10.0.0.2:7000",
			"redis://:" + masked + "@10.0.0.1:7000,redis://:" + masked + "@10.0.0.2:7000", []string{"pass-one", "pass-two"}},
		{"unparsable Redis URL", "redis", "redis://user:bad-pass@[::1", masked, []string{"bad-pass"}},
		{"on-demand ask URL with a key", "on-demand-ask", "https://api.example/allowed?key=ask-key",
			"https://api.example/allowed?key=" + masked, []string{"ask-key"}},
		{"ACME CA with a password", "acme-ca", "https://acme:ca-pass@ca.example/dir",
			"https://acme:" + masked + "@ca.example/dir", []string{"ca-pass"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--print-config", "--" + tc.flag, tc.value}
			switch tc.flag {
			case "on-demand-ask":
				args = append(args, "--tls", "acme", "--on-demand")
			case "acme-ca":
				args = append(args, "--tls", "acme", "--domain", "edge.example")
			}
			var out, errOut bytes.Buffer
			if code := run(context.Background(), args, func(string) string { return "" }, &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			var got map[string]any
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out.String())
			}
			if got[tc.flag] != tc.want {
				t.Errorf("%s = %v, want %v", tc.flag, got[tc.flag], tc.want)
			}
			for _, secret := range tc.secrets {
				if strings.Contains(out.String(), secret) {
					t.Errorf("--print-config shows the secret %q", secret)
				}
			}
		})
	}
}

func countFlags() int {
	n := 0
	newFlagSet(new(config), new(command)).VisitAll(func(*flag.Flag) { n++ })
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
