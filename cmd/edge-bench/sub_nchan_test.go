package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// payloadLine returns an edge-bench payload of sequence number seq.
func payloadLine(seq uint64) string {
	return string(appendPayload(nil, seq, time.Now().UnixNano(), 100))
}

func TestNchanSSE(t *testing.T) {
	tests := []struct {
		name      string
		stream    string
		readyErr  bool  // the stream ends before ": hi"
		unique    int64 // distinct messages received after ready
		unparsed  int64
		wantError string // of read, at the end of the stream
	}{
		{
			name:   "two messages",
			stream: ": hi\n\nid: 1796624058:0\ndata: " + payloadLine(0) + "\n\nid: 1796624058:1\ndata: " + payloadLine(1) + "\n\n",
			unique: 2, wantError: "EOF",
		},
		{
			name:   "CRLF lines, other comments, a repeat",
			stream: ": hi\r\n\r\n: keepalive\r\nid: 1:0\r\ndata: " + payloadLine(0) + "\r\n\r\nid: 1:0\r\ndata: " + payloadLine(0) + "\r\n\r\n",
			unique: 1, wantError: "EOF",
		},
		{
			name:   "a message that is not edge-bench's",
			stream: ": hi\n\nid: 1:0\ndata: hello\n\n",
			unique: 0, unparsed: 1, wantError: "EOF",
		},
		{
			name:     "no hi",
			stream:   "id: 1:0\ndata: " + payloadLine(0) + "\n\n",
			readyErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &subscriber{env: new(clientEnv), shard: new(recorder).shard(0)}
			e := &sseReader{s: s, nchan: true, r: bufio.NewReaderSize(strings.NewReader(tt.stream), 64)}
			err := e.next(true)
			if tt.readyErr {
				if err == nil {
					t.Fatal("ready on a stream without \": hi\"")
				}
				return
			}
			if err != nil {
				t.Fatalf("waiting for ready: %v", err)
			}
			if err := e.read(); err == nil || !strings.Contains(err.Error(), tt.wantError) {
				t.Errorf("read: %v, want an error with %q", err, tt.wantError)
			}
			if s.track.unique != tt.unique || s.unparsed != tt.unparsed {
				t.Errorf("received %d (unparsed %d), want %d (%d)", s.track.unique, s.unparsed, tt.unique, tt.unparsed)
			}
		})
	}
}

// nchanAnswer builds a long-poll answer of Nchan.
func nchanAnswer(status int, headers, body string) string {
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Length: %d\r\n%s\r\n%s", status, http.StatusText(status), len(body), headers, body)
}

func TestReadNchanPoll(t *testing.T) {
	cursor := "Last-Modified: Mon, 07 Dec 2026 06:14:18 GMT\r\nEtag: 0\r\n"
	msg := payloadLine(3)
	tests := []struct {
		name    string
		answer  string
		msg     string // "" for none
		keep    bool
		wantErr string
	}{
		{"message", nchanAnswer(200, cursor, msg), msg, true, ""},
		{"message, connection close", nchanAnswer(200, cursor+"Connection: close\r\n", msg), msg, false, ""},
		{"not modified", nchanAnswer(304, "", ""), "", true, ""},
		{"timed out", nchanAnswer(408, "", ""), "", true, ""},
		{"no cursor", nchanAnswer(200, "", msg), "", false, "without Last-Modified"},
		{"refused", nchanAnswer(403, "", "forbidden"), "", false, "403"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(tt.answer)), nil)
			if err != nil {
				t.Fatal(err)
			}
			got, keep, err := readNchanPoll(resp, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.msg || keep != tt.keep {
				t.Errorf("got %q, keep %v, %v; want %q, keep %v", got, keep, err, tt.msg, tt.keep)
			}
		})
	}
}

func TestAppendNchanPoll(t *testing.T) {
	tests := []struct {
		name, modified, etag, want string
	}{
		{"first poll", "", "", "GET /sub/bench-1 HTTP/1.1\r\nHost: h:1\r\nUser-Agent: edge-bench\r\n\r\n"},
		{"with cursor", "Mon, 07 Dec 2026 06:14:18 GMT", "3", "GET /sub/bench-1 HTTP/1.1\r\nHost: h:1\r\n" +
			"If-Modified-Since: Mon, 07 Dec 2026 06:14:18 GMT\r\nIf-None-Match: 3\r\nUser-Agent: edge-bench\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendNchanPoll(nil, "h:1", "/sub/bench-1", tt.modified, tt.etag)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNchanWebSocket(t *testing.T) {
	tests := []struct {
		name     string
		frames   []string // text frames Nchan sends, in order
		binary   bool     // also send a binary frame, which is not a message
		unique   int64
		unparsed int64
	}{
		{"one message per frame", []string{payloadLine(0), payloadLine(1), payloadLine(2)}, false, 3, 0},
		{"a repeat and a foreign frame", []string{payloadLine(0), payloadLine(0), "ping"}, true, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/sub/bench-0" {
					http.NotFound(w, r)
					return
				}
				c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer c.Close()
				if tt.binary {
					c.WriteMessage(websocket.BinaryMessage, []byte(payloadLine(9)))
				}
				for _, f := range tt.frames {
					c.WriteMessage(websocket.TextMessage, []byte(f))
				}
				c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			}))
			defer srv.Close()
			u, _ := url.Parse(srv.URL)
			env := newClientEnv(config{URLs: []*url.URL{u}, Target: targetNchan, Size: 100, Sources: []net.IP{net.IPv4(127, 0, 0, 1)}})
			s := &subscriber{transport: transportWS, env: env, shard: new(recorder).shard(0)}
			receive, err := s.connectWS(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if err := receive(); !websocket.IsCloseError(errors.Unwrap(err), websocket.CloseNormalClosure) {
				t.Errorf("receive: %v, want the normal close", err)
			}
			if s.track.unique != tt.unique || s.unparsed != tt.unparsed {
				t.Errorf("received %d (unparsed %d), want %d (%d)", s.track.unique, s.unparsed, tt.unique, tt.unparsed)
			}
		})
	}
}

func TestParsePIDs(t *testing.T) {
	tests := []struct {
		name, pid string
		want      []int
		wantErr   bool
	}{
		{"none", "", nil, false},
		{"zero is none", "0", nil, false},
		{"one", "42", []int{42}, false},
		{"pidof's spaces", "42 43 44", []int{42, 43, 44}, false},
		{"commas", "42,43, 44", []int{42, 43, 44}, false},
		{"not a number", "42,nginx", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig("run", []string{"--pid", tt.pid}, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseConfig(--pid %q): %v", tt.pid, err)
			}
			if !tt.wantErr && fmt.Sprint(c.PIDs) != fmt.Sprint(tt.want) {
				t.Errorf("PIDs %v, want %v", c.PIDs, tt.want)
			}
		})
	}
}

func TestTargetFlag(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for none
	}{
		{"edge by default", nil, ""},
		{"nchan", []string{"--target", "nchan"}, ""},
		{"nchan over redis", []string{"--target", "nchan", "--publish", "redis"}, "publishes over http"},
		{"centrifugo", []string{"--target", "centrifugo"}, ""},
		{"centrifugo over sse", []string{"--target", "centrifugo", "--transport", "sse"}, "ws only"},
		{"centrifugo over redis", []string{"--target", "centrifugo", "--publish", "redis"}, "publishes over http"},
		{"centrifugo without a key", []string{"--target", "centrifugo", "--centrifugo-api-key", ""}, "http_api.key"},
		{"unknown", []string{"--target", "nats"}, "use edge, nchan or centrifugo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("run", tt.args, io.Discard)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("parseConfig(%q) = %v, want an error with %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

// nchanModule is where Debian's libnginx-mod-nchan installs the module
// that testdata/nchan.conf loads.
const nchanModule = "/usr/lib/nginx/modules/ngx_nchan_module.so"

// startNchan runs nginx with testdata/nchan.conf (the peer's
// configuration, with its port, files and connection limit moved into a
// temporary directory) until the test ends, and returns its URL and pid.
// Without nginx and the Nchan module it skips the test, or fails it when
// CI is set.
func startNchan(t *testing.T) (*url.URL, int) {
	t.Helper()
	nginx, err := exec.LookPath("nginx")
	if err == nil {
		_, err = os.Stat(nchanModule)
	}
	if err != nil {
		needPeer(t, fmt.Sprintf("nginx with the Nchan module is not installed (apt-get install -y nginx libnginx-mod-nchan): %v", err))
	}
	conf, err := os.ReadFile("testdata/nchan.conf")
	if err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	dir := t.TempDir()
	text := strings.NewReplacer(
		"127.0.0.1:8090", addr,
		"/tmp/nchan.pid", filepath.Join(dir, "nchan.pid"),
		"/tmp/nchan-", filepath.Join(dir, "nchan-"),
		"worker_connections 19000", "worker_connections 1024",
		"worker_processes auto", "worker_processes 2",
		"nchan_shared_memory_size 256M", "nchan_shared_memory_size 16M",
	).Replace(string(conf))
	if strings.Contains(text, ":8090") || strings.Contains(strings.ReplaceAll(text, dir, ""), "/tmp/") {
		t.Fatalf("testdata/nchan.conf changed: this test no longer moves all of it into %s", dir)
	}
	confPath := filepath.Join(dir, "nchan.conf")
	if err := os.WriteFile(confPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	// Ready once nginx accepts connections, or failed once it exits.
	pid := startPeer(t, cmd, addr, func() string {
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return stderr.String() + string(log)
	})
	return &url.URL{Scheme: "http", Host: addr}, pid
}

func TestRunAgainstNchan(t *testing.T) {
	u, pid := startNchan(t)
	c := parse(t, "run", "--target", "nchan", "--url", u.String(), "--transport", "mix", "--subs", "30", "--channels", "3",
		"--rate", "200", "--size", "128", "--duration", "1s", "--ramp-batch", "7", "--pid", strconv.Itoa(pid))
	rep, err := runBench(t.Context(), c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checkExactRun(t, c, rep)
	if rep.Expected != 10*c.total() {
		t.Errorf("expected %d deliveries, want 10 per message (%d)", rep.Expected, 10*c.total())
	}
	if rep.Target != targetNchan || rep.CPUS == nil || rep.RSSPerConnBytes == nil {
		t.Errorf("target %q, process figures %v %v", rep.Target, rep.CPUS, rep.RSSPerConnBytes)
	}
}
