package hijack

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Take takes w's HTTP/1 connection from net/http, which from then on
// neither reads nor writes it nor waits for it (http.Server.Shutdown
// included): the caller closes it, or gives it back with
// Listener.GiveBack. It returns header, w's header lines as
// http.Header.Write writes them, for the head the caller writes by hand,
// and pending, a copy of the bytes of the client's next request that
// net/http had already read (nil when none). On HTTP/2 it fails with an
// error wrapping http.ErrNotSupported.
func Take(w http.ResponseWriter) (conn net.Conn, header, pending []byte, err error) {
	var h bytes.Buffer
	w.Header().Write(&h)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, nil, err
	}
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		pending = bytes.Clone(p)
	}
	return conn, h.Bytes(), pending, nil
}

// AppendStreamHead appends the head of a 200 response whose body runs
// until the connection closes (an SSE stream): the status line, header
// (lines as Take returns them) and "Connection: close". Without a
// Content-Length or chunking, HTTP/1.1 ends such a body with the
// connection, so the stream's bytes follow the head as they are.
func AppendStreamHead(b, header []byte) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\n"...)
	b = append(b, header...)
	return append(b, "Connection: close\r\n\r\n"...)
}

// AppendJSON appends a whole response with status and the JSON body, to
// which it adds a final newline, with the headers net/http writes for the
// edge's JSON answers (Content-Type, Cache-Control: no-store, nosniff,
// Date, Content-Length) and then header (lines as Take returns them).
// Without keepAlive it adds "Connection: close", and the caller closes
// the connection after writing.
func AppendJSON(b []byte, status int, header, body []byte, keepAlive bool) []byte {
	b = appendJSONHead(b, status, header, "", len(body)+1, keepAlive)
	b = append(b, body...)
	return append(b, '\n')
}

// AppendEncodedJSON is AppendJSON for a body in a content coding (such as
// gzip, of the JSON and its final newline), which it names in
// Content-Encoding, with "Vary: Accept-Encoding"; body is written as it
// is.
func AppendEncodedJSON(b []byte, status int, header []byte, coding string, body []byte, keepAlive bool) []byte {
	b = appendJSONHead(b, status, header, coding, len(body), keepAlive)
	return append(b, body...)
}

// appendJSONHead appends the head of AppendJSON's responses, for a body
// of length bytes in coding ("": none).
func appendJSONHead(b []byte, status int, header []byte, coding string, length int, keepAlive bool) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nDate: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(length), 10)
	b = append(b, "\r\n"...)
	if coding != "" {
		b = append(b, "Content-Encoding: "...)
		b = append(b, coding...)
		b = append(b, "\r\nVary: Accept-Encoding\r\n"...)
	}
	if !keepAlive {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, header...)
	return append(b, "\r\n"...)
}
