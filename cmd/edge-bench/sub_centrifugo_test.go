package main

import (
	"bytes"
	"cmp"
	"encoding/json"
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

	"github.com/edgeworks/edge/resume/redistest"
)

// centrifugoPubLine returns Centrifugo's push of an edge-bench payload of
// sequence number seq on bench-0.
func centrifugoPubLine(seq uint64) string {
	return `{"push":{"channel":"bench-0","pub":{"data":"` + payloadLine(seq) + `","offset":` + strconv.FormatUint(seq+1, 10) + `}}}`
}

func TestCentrifugoWebSocket(t *testing.T) {
	tests := []struct {
		name string
		// subscribed is sent as the reply to subscribe; frames follow,
		// and "{}" among them is a ping whose pong the server waits for.
		subscribed string
		frames     []string
		connectErr string // "" when the subscriber becomes ready
		endErr     string // "" for the normal close
		unique     int64
		unparsed   int64
	}{
		{
			name:       "one push a frame",
			subscribed: `{"id":2,"subscribe":{"recoverable":true,"epoch":"e","positioned":true}}`,
			frames:     []string{centrifugoPubLine(0), centrifugoPubLine(1)},
			unique:     2,
		},
		{
			name:       "pushes batched with the reply, a ping, a repeat",
			subscribed: `{"id":2,"subscribe":{}}` + "\n" + centrifugoPubLine(0),
			frames:     []string{centrifugoPubLine(1) + "\n" + centrifugoPubLine(2) + "\n" + centrifugoPubLine(1), "{}", centrifugoPubLine(3)},
			unique:     4,
		},
		{
			name:       "data that is not edge-bench's",
			subscribed: `{"id":2,"subscribe":{}}`,
			frames:     []string{`{"push":{"channel":"bench-0","pub":{"data":{"a":1}}}}`, `{"push":{"channel":"bench-0","pub":{"data":"hello"}}}`},
			unparsed:   2,
		},
		{
			name:       "subscribe refused",
			subscribed: `{"id":2,"error":{"code":103,"message":"permission denied"}}`,
			connectErr: "permission denied",
		},
		{
			name:       "unsubscribed by the server",
			subscribed: `{"id":2,"subscribe":{}}`,
			frames:     []string{centrifugoPubLine(0), `{"push":{"channel":"bench-0","unsubscribe":{"code":2500,"reason":"insufficient state"}}}`},
			endErr:     "ended the subscription",
			unique:     1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srvErr := make(chan error, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != centrifugoWSPath {
					http.NotFound(w, r)
					return
				}
				c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
				if err != nil {
					srvErr <- err
					return
				}
				defer c.Close()
				srvErr <- fakeCentrifugo(c, tt.subscribed, tt.frames)
			}))
			defer srv.Close()
			u, _ := url.Parse(srv.URL)
			env := newClientEnv(config{URLs: []*url.URL{u}, Target: targetCentrifugo, Size: 100, Sources: []net.IP{net.IPv4(127, 0, 0, 1)}})
			s := &subscriber{transport: transportWS, env: env, shard: new(recorder).shard(0)}
			receive, err := s.connectCentrifugoWS(t.Context())
			switch {
			case tt.connectErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.connectErr) {
					t.Fatalf("connect: %v, want an error with %q", err, tt.connectErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			err = receive()
			if tt.endErr == "" && !websocket.IsCloseError(errors.Unwrap(err), websocket.CloseNormalClosure) ||
				tt.endErr != "" && (err == nil || !strings.Contains(err.Error(), tt.endErr)) {
				t.Errorf("receive: %v, want %q (or the normal close)", err, tt.endErr)
			}
			if err := <-srvErr; err != nil {
				t.Errorf("server: %v", err)
			}
			if s.track.unique != tt.unique || s.unparsed != tt.unparsed {
				t.Errorf("received %d (unparsed %d), want %d (%d)", s.track.unique, s.unparsed, tt.unique, tt.unparsed)
			}
		})
	}
}

// fakeCentrifugo plays Centrifugo's side of one WebSocket connection: it
// checks the connect and subscribe commands, answers subscribe with
// subscribed, sends frames (waiting for the pong after each "{}"), and
// closes normally.
func fakeCentrifugo(c *websocket.Conn, subscribed string, frames []string) error {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var cmd struct {
		ID        uint32          `json:"id"`
		Connect   json.RawMessage `json:"connect"`
		Subscribe *struct {
			Channel string `json:"channel"`
		} `json:"subscribe"`
	}
	if err := c.ReadJSON(&cmd); err != nil || cmd.ID != 1 || cmd.Connect == nil {
		return fmt.Errorf("want connect with id 1, got %+v, %v", cmd, err)
	}
	c.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"connect":{"client":"c","version":"6.9.1","ping":25,"pong":true}}`))
	cmd.Connect = nil
	if err := c.ReadJSON(&cmd); err != nil || cmd.ID != 2 || cmd.Subscribe == nil || cmd.Subscribe.Channel != "bench-0" {
		return fmt.Errorf("want subscribe to bench-0 with id 2, got %+v, %v", cmd, err)
	}
	c.WriteMessage(websocket.TextMessage, []byte(subscribed))
	if strings.Contains(subscribed, `"error"`) {
		return nil
	}
	for _, f := range frames {
		c.WriteMessage(websocket.TextMessage, []byte(f))
		if f != "{}" {
			continue
		}
		if _, pong, err := c.ReadMessage(); err != nil || string(pong) != "{}" {
			return fmt.Errorf("want the pong {}, got %q, %v", pong, err)
		}
	}
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	return nil
}

func TestAppendCentrifugoPublish(t *testing.T) {
	for _, size := range []int{minSize, 128, 4096} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			payload := appendPayload(nil, 7, time.Now().UnixNano(), size)
			var got struct{ Channel, Data string }
			if err := json.Unmarshal(appendCentrifugoPublish(nil, "bench-3", payload), &got); err != nil {
				t.Fatal(err)
			}
			if got.Channel != "bench-3" || got.Data != string(payload) {
				t.Errorf("decoded %+v, want bench-3 and the payload", got)
			}
		})
	}
}

func TestCheckCentrifugoAnswer(t *testing.T) {
	tests := []struct {
		name    string
		code    int
		body    string
		wantErr string // "" for none
		refused bool
	}{
		{"stored", 200, `{"result":{"offset":1,"epoch":"e"}}`, "", false},
		{"published without history", 200, `{"result":{}}`, "", false},
		{"refused", 200, `{"error":{"code":107,"message":"bad request"}}`, "bad request", true},
		{"wrong key", 401, ``, "401", false},
		{"not JSON", 200, `ok`, "answer ok", false},
		{"no result", 200, `{}`, "without a result", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkCentrifugoAnswer(strconv.Itoa(tt.code), tt.code, []byte(tt.body))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err %v, want one with %q", err, tt.wantErr)
			}
			if errors.Is(err, errCentrifugoRefused) != tt.refused {
				t.Errorf("err %v: refused %v, want %v", err, !tt.refused, tt.refused)
			}
		})
	}
}

// centrifugoBinary returns the path of $EDGE_CENTRIFUGO, or of centrifugo
// on PATH. Without it the test skips, or fails when CI is set.
func centrifugoBinary(t *testing.T) string {
	t.Helper()
	bin := cmp.Or(os.Getenv("EDGE_CENTRIFUGO"), "centrifugo")
	path, err := exec.LookPath(bin)
	if err != nil {
		needPeer(t, fmt.Sprintf("no Centrifugo (GOBIN=DIR go install github.com/centrifugal/centrifugo/v6@v6.9.1, then set EDGE_CENTRIFUGO=DIR/centrifugo; bash .ci/run does): %v", err))
	}
	return path
}

// startCentrifugo runs Centrifugo with config (a file in testdata) on a
// free loopback port until the test ends, and returns its URL and pid.
// env adds settings as CENTRIFUGO_* environment variables, which take
// precedence over the file. The binary is centrifugoBinary's.
func startCentrifugo(t *testing.T, config string, env ...string) (*url.URL, int) {
	t.Helper()
	bin := centrifugoBinary(t)
	conf, err := filepath.Abs(filepath.Join("testdata", config))
	if err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	var out bytes.Buffer
	cmd := exec.Command(bin, "--config", conf)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), append([]string{"CENTRIFUGO_HTTP_SERVER_PORT=" + port}, env...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	// Registered first, so run after startPeer stopped the server.
	t.Cleanup(func() {
		// Unknown keys are only warned about: a misspelt one in testdata
		// would silently change the peer.
		if bytes.Contains(out.Bytes(), []byte("unknown key")) {
			t.Errorf("testdata/%s has keys Centrifugo does not know:\n%s", config, out.Bytes())
		}
	})
	// Ready once it accepts connections, or failed once it exits.
	pid := startPeer(t, cmd, addr, out.String)
	return &url.URL{Scheme: "http", Host: addr}, pid
}

func TestRunAgainstCentrifugo(t *testing.T) {
	tests := []struct {
		name   string
		config string
		redis  bool
	}{
		{"memory engine", "centrifugo.json", false},
		{"redis engine", "centrifugo-redis.json", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Pings every second, answered within half of one, so that a
			// subscriber that does not answer them is cut during the run.
			centrifugoBinary(t) // before starting Redis for nothing
			env := []string{"CENTRIFUGO_CLIENT_PING_INTERVAL=1s", "CENTRIFUGO_CLIENT_PONG_TIMEOUT=500ms"}
			if tt.redis {
				env = append(env, "CENTRIFUGO_ENGINE_REDIS_ADDRESS="+redistest.Start(t).URL())
			}
			u, pid := startCentrifugo(t, tt.config, env...)
			c := parse(t, "run", "--target", "centrifugo", "--url", u.String(), "--transport", "ws", "--subs", "50", "--channels", "5",
				"--rate", "200", "--size", "128", "--duration", "2s", "--ramp-batch", "7", "--pid", strconv.Itoa(pid))
			rep, err := runBench(t.Context(), c, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			checkExactRun(t, c, rep)
			if rep.Expected != 10*c.total() {
				t.Errorf("expected %d deliveries, want 10 per message (%d)", rep.Expected, 10*c.total())
			}
			if rep.Target != targetCentrifugo || rep.CPUS == nil || rep.RSSPerConnBytes == nil {
				t.Errorf("target %q, process figures %v %v", rep.Target, rep.CPUS, rep.RSSPerConnBytes)
			}
		})
	}
}
