package hijack

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// readBuffer is the reader size the edge gives gorilla (transports'
// wsReadBuffer).
const readBuffer = 320

// maskedFrame is a final client frame of opcode op carrying payload,
// masked with a zero key (the mask bit set, as a client must).
func maskedFrame(op byte, payload string) []byte {
	return append([]byte{0x80 | op, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
}

func TestSkipPong(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		pong    bool
		err     bool
		skipped int // bytes consumed
	}{
		{name: "empty pong", in: maskedFrame(0xa, ""), pong: true, skipped: 6},
		{name: "pong of 125 bytes", in: append(maskedFrame(0xa, strings.Repeat("p", 125)), 0x81), pong: true, skipped: 131},
		{name: "text", in: maskedFrame(0x1, "hi")},
		{name: "ping", in: maskedFrame(0x9, "")},
		{name: "close", in: maskedFrame(0x8, "")},
		{name: "unmasked pong", in: []byte{0x8a, 0x00}},
		{name: "pong not final", in: []byte{0x0a, 0x80, 0, 0, 0, 0}},
		{name: "pong with rsv bit", in: []byte{0xca, 0x80, 0, 0, 0, 0}},
		{name: "pong with 16-bit length", in: []byte{0x8a, 0x80 | 126, 0, 126}},
		{name: "pong cut short", in: maskedFrame(0xa, "abc")[:7], err: true},
		{name: "nothing", in: nil, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(bytes.NewReader(tt.in), readBuffer)
			pong, err := SkipPong(br)
			if pong != tt.pong || (err != nil) != tt.err {
				t.Fatalf("SkipPong = %v, %v; want %v, error %v", pong, err, tt.pong, tt.err)
			}
			if err != nil {
				return
			}
			rest, _ := io.ReadAll(br)
			if want := tt.in[tt.skipped:]; !bytes.Equal(rest, want) {
				t.Fatalf("left %x, want %x", rest, want)
			}
		})
	}
}

// TestGorillaReadsThroughUpgradeResponse pins gorilla's buffering: with
// Upgrader.ReadBufferSize 0 it reads the connection only through the
// reader UpgradeResponse made, and between messages that reader is at a
// frame boundary, so SkipPong, waiting there as the edge's reader does,
// sees every pong first and gorilla sees none of them, also after
// compressed messages (permessage-deflate). Were gorilla to buffer on its
// own, SkipPong would wait for bytes gorilla holds and the read deadline
// would end the test; so would a parked connection (package
// internal/idle), which waits for its socket once that reader is empty.
func TestGorillaReadsThroughUpgradeResponse(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) { testReadsThrough(t, compress) })
	}
}

func testReadsThrough(t *testing.T, compress bool) {
	big := strings.Repeat("b", 3*readBuffer) // read through the reader in pieces
	sent := []struct {
		kind    int
		payload string
	}{
		{websocket.PongMessage, ""},
		{websocket.TextMessage, "one"},
		{websocket.PongMessage, "hb"},
		{websocket.PongMessage, strings.Repeat("p", 125)},
		{websocket.TextMessage, big},
		{websocket.PongMessage, "after a long message"},
		{websocket.TextMessage, "last"},
	}
	type result struct {
		messages       []string
		pongs, gorilla int // pongs SkipPong consumed; pongs gorilla handled
		err            error
	}
	got := make(chan result, 1)
	upgrader := websocket.Upgrader{EnableCompression: true}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp := &UpgradeResponse{ResponseWriter: w, Size: readBuffer}
		conn, err := upgrader.Upgrade(resp, r, nil)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer conn.Close()
		var res result
		conn.SetPongHandler(func(string) error { res.gorilla++; return nil })
		conn.SetReadDeadline(time.Now().Add(waitFor))
		for len(res.messages) < 3 {
			pong, err := SkipPong(resp.Reader())
			if err != nil {
				res.err = err
				break
			}
			if pong {
				res.pongs++
				continue
			}
			_, r, err := conn.NextReader()
			if err != nil {
				res.err = err
				break
			}
			b, _ := io.ReadAll(r)
			res.messages = append(res.messages, string(b))
		}
		got <- res
	}))
	defer srv.Close()
	conn, _, err := (&websocket.Dialer{EnableCompression: compress}).Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, m := range sent {
		if m.kind == websocket.PongMessage {
			err = conn.WriteControl(m.kind, []byte(m.payload), time.Now().Add(waitFor))
		} else {
			err = conn.WriteMessage(m.kind, []byte(m.payload))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	res := <-got
	if res.err != nil {
		t.Fatalf("after %d messages and %d pongs: %v", len(res.messages), res.pongs, res.err)
	}
	if want := []string{"one", big, "last"}; strings.Join(res.messages, "|") != strings.Join(want, "|") {
		t.Fatalf("messages %.40q, want %.40q", res.messages, want)
	}
	if res.pongs != 4 || res.gorilla != 0 {
		t.Fatalf("SkipPong consumed %d pongs and gorilla %d; want 4 and 0", res.pongs, res.gorilla)
	}
}

// earlyData is a ResponseWriter whose connection holds bytes the client
// sent before the handshake completed.
type earlyData struct {
	http.ResponseWriter
	conn net.Conn
}

func (w earlyData) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	br := bufio.NewReader(io.MultiReader(strings.NewReader("early"), w.conn))
	br.Peek(len("early"))
	return w.conn, bufio.NewReadWriter(br, bufio.NewWriter(w.conn)), nil
}

// TestGorillaRefusesEarlyData pins that gorilla refuses a handshake whose
// client sent data before it completed, which UpgradeResponse leaves in
// net/http's reader for gorilla to see.
func TestGorillaRefusesEarlyData(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp := &UpgradeResponse{ResponseWriter: earlyData{httptest.NewRecorder(), server}, Size: readBuffer}
	conn, err := (&websocket.Upgrader{}).Upgrade(resp, r, nil)
	if err == nil {
		conn.Close()
		t.Fatal("gorilla upgraded a connection with early data")
	}
	if resp.Reader() != nil {
		t.Fatal("UpgradeResponse made a reader that would have dropped the early data")
	}
	if _, err := server.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("the connection is open after the refusal (%v)", err)
	}
}
