package hijack

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/http"
)

// UpgradeResponse is the ResponseWriter to hand gorilla's
// Upgrader.Upgrade (whose ReadBufferSize must be 0) so that the caller
// keeps the buffered reader gorilla reads the connection through, and can
// wait for the next frame outside gorilla (SkipPong). Size is the
// reader's size; gorilla uses a hijacked reader only when it is larger
// than 256 bytes.
type UpgradeResponse struct {
	http.ResponseWriter
	Size int
	// Wrap, when set, wraps the hijacked connection that gorilla gets.
	Wrap func(net.Conn) net.Conn
	br   *bufio.Reader
}

// Hijack takes the connection from net/http and wraps it in a new
// buffered reader of Size bytes, unless the client sent data early: then
// it returns net/http's reader, which holds that data, and gorilla
// refuses the handshake.
func (w *UpgradeResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return conn, brw, err
	}
	if w.Wrap != nil {
		conn = w.Wrap(conn)
	}
	w.br = bufio.NewReaderSize(conn, w.Size)
	return conn, bufio.NewReadWriter(w.br, bufio.NewWriterSize(conn, w.Size)), nil
}

// Reader returns the reader gorilla reads the upgraded connection
// through; nil before a successful upgrade.
func (w *UpgradeResponse) Reader() *bufio.Reader { return w.br }

// maxPong is the longest pong frame SkipPong consumes: a 2-byte header,
// the 4-byte mask and a control frame's payload of at most 125 bytes.
const maxPong = 2 + 4 + 125

// SkipPong waits until br, which gorilla reads a server-side WebSocket
// connection through, holds the start of a frame. When the frame is a
// pong it consumes it and reports true; any other frame, valid or not, it
// leaves for gorilla. It returns the read error, if any. A reader that
// waits here between messages, and so handles the pongs that answer its
// heartbeat pings, is not left waiting deep inside gorilla after one.
// Call it only between messages, when gorilla is at a frame boundary:
// skipping a whole pong frame there changes nothing gorilla keeps.
func SkipPong(br *bufio.Reader) (bool, error) {
	h, err := br.Peek(2)
	if err != nil {
		return false, err
	}
	// A final, unextended, masked pong with a short payload.
	n := 2 + 4 + int(h[1]&0x7f)
	if h[0] != 0x8a || h[1]&0x80 == 0 || n > maxPong {
		return false, nil
	}
	if _, err := br.Peek(n); err != nil {
		return false, err
	}
	br.Discard(n)
	return true, nil
}

// AppendTextFrame appends a final, unmasked, uncompressed WebSocket text
// frame of payload to b, as a server writes it (RFC 6455, section 5.2):
// the same bytes gorilla writes for such a message.
func AppendTextFrame(b, payload []byte) []byte {
	const finText = 0x81
	switch n := len(payload); {
	case n <= 125:
		b = append(b, finText, byte(n))
	case n <= 0xffff:
		b = append(b, finText, 126, byte(n>>8), byte(n))
	default:
		b = append(b, finText, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}
