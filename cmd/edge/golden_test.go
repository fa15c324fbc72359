package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGoldenBinary replays the golden transcripts that hold no message
// (../../testdata/golden/errors) against the built binary, started with
// the flags that match the transports test's edge, reading the files as
// a client author would (see ../../testdata/README.md). The transports
// package checks every transcript against transports.Server; this checks
// that the binary answers the same bytes.
func TestGoldenBinary(t *testing.T) {
	bin := buildEdge(t)
	tests := []struct {
		name  string
		flags []string
	}{
		{"bad-channel", nil},
		{"bad-cursor", nil},
		{"forbidden-origin", nil},
		{"method-not-allowed", nil},
		{"not-found", nil},
		{"unauthorized", []string{"--publish-key", "s3cret"}},
		{"payload-too-large", []string{"--max-payload", "16"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file, err := os.ReadFile(filepath.Join("..", "..", "testdata", "golden", "errors", tt.name+".txt"))
			if err != nil {
				t.Fatal(err)
			}
			s := goldenSections(file)
			if len(s) != 2 || s[0].name != "request" || s[1].name != "response" {
				t.Fatalf("want a request and a response section, got %d sections", len(s))
			}
			base := startNode(t, bin, tt.flags...)
			conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(s[0].b); err != nil {
				t.Fatal(err)
			}
			got := readAnswer(t, conn)
			if want := s[1].b; !bytes.Equal(got, want) {
				t.Errorf("the binary answered\n%s\nwant (from the golden file)\n%s", got, want)
			}
		})
	}
}

// goldenSection is one section of a golden transcript.
type goldenSection struct {
	name string
	b    []byte
}

var sectionLine = regexp.MustCompile(`(?m)^-- (.+) --\n`)

// goldenSections splits a transcript into its sections: each runs from
// its "-- NAME --" line to the next, less the "\n" the file adds after it.
func goldenSections(file []byte) []goldenSection {
	var out []goldenSection
	marks := sectionLine.FindAllSubmatchIndex(file, -1)
	for i, m := range marks {
		end := len(file)
		if i+1 < len(marks) {
			end = marks[i+1][0]
		}
		out = append(out, goldenSection{string(file[m[2]:m[3]]), bytes.TrimSuffix(file[m[1]:end], []byte("\n"))})
	}
	return out
}

var (
	answerDate      = regexp.MustCompile(`\r\nDate: [^\r\n]*\r\n`)
	answerRequestID = regexp.MustCompile(`\r\nX-Request-Id: [A-Z2-7]{8}-[0-9a-z]+\r\n`)
)

// readAnswer reads one answer with a Content-Length from conn and
// replaces its Date and generated X-Request-Id with the transcripts'
// placeholders.
func readAnswer(t *testing.T, conn net.Conn) []byte {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	var head []byte
	n := -1
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("answer head %q: %v", head, err)
		}
		head = append(head, line...)
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if n < 0 {
		t.Fatalf("an answer without Content-Length:\n%s", head)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatalf("answer body: %v", err)
	}
	head = answerDate.ReplaceAll(head, []byte("\r\nDate: <date>\r\n"))
	head = answerRequestID.ReplaceAll(head, []byte("\r\nX-Request-Id: <request-id>\r\n"))
	return append(head, body...)
}
