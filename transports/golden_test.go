package transports_test

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/transports"
)

var update = flag.Bool("update", false, "rewrite the golden wire transcripts in testdata/golden")

var idPattern = regexp.MustCompile(`\b\d{13}-\d+\b`)

// normalize replaces message ids, which depend on the clock, with <id1>,
// <id2>, … in order of first appearance.
func normalize(s string) string {
	seen := map[string]string{}
	return idPattern.ReplaceAllStringFunc(s, func(id string) string {
		if _, ok := seen[id]; !ok {
			seen[id] = fmt.Sprintf("<id%d>", len(seen)+1)
		}
		return seen[id]
	})
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	got = normalize(got)
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// publishSample publishes the transcripts' messages: plain, typed with
// two lines, and binary.
func publishSample(e *testEdge) {
	e.publish("news", `{"headline":"hello"}`)
	e.publishEvent("news", "note", "line one\nline two")
	e.publish("news", "\x00\xff")
}

func TestGoldenSSE(t *testing.T) {
	e := startEdge(t, transports.Config{})
	publishSample(e)
	resp, err := http.Get(e.url("/v1/subscribe", "channel", "news", "since", "0-0", "transport", "sse"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	r := bufio.NewReader(resp.Body)
	for blanks := 0; blanks < 5; { // retry, three messages, the live id
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(line)
		if line == "\n" {
			blanks++
		}
	}
	golden(t, "sse.txt", b.String())
}

func TestGoldenPoll(t *testing.T) {
	e := startEdge(t, transports.Config{})
	publishSample(e)
	resp, err := http.Get(e.url("/v1/subscribe", "channel", "news", "since", "0-0"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	golden(t, "poll.json", string(body))
}

func TestGoldenWebSocket(t *testing.T) {
	e := startEdge(t, transports.Config{})
	publishSample(e)
	c := dialWS(t, e.wsURL("channel", "news", "since", "0-0"))
	var b strings.Builder
	read := func() {
		_, frame, err := c.conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		b.Write(frame)
		b.WriteByte('\n')
	}
	read() // history
	read() // subscribed
	c.conn.WriteMessage(websocket.TextMessage, []byte(`{"op":"publish","channel":"bad channel","ref":1}`))
	read() // error
	golden(t, "ws.txt", b.String())
}

func TestGoldenError(t *testing.T) {
	e := startEdge(t, transports.Config{})
	resp, err := http.Get(e.url("/v1/subscribe", "channel", "news", "since", "yesterday"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	golden(t, "error.json", fmt.Sprintf("%d %s", resp.StatusCode, body))
}
