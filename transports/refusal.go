package transports

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"

	"github.com/edgeworks/edge/edge"
)

// net/http refuses some requests itself, before any handler runs, and
// writes its answer straight to the connection in one Write, as plain
// text:
//
//	HTTP/1.1 431 Request Header Fields Too Large          request line and headers over the limit
//	HTTP/1.1 400 Bad Request                              a bad request line, header, Content-Length…
//	HTTP/1.1 400 Bad Request: missing required Host header  (and its other reasons)
//	HTTP/1.1 501 Not Implemented                          an unknown Transfer-Encoding
//	HTTP/1.1 505 HTTP Version Not Supported: …
//	HTTP/1.0 400 Bad Request … Client sent an HTTP request to an HTTPS server.
//
// each but the last followed by exactly cannedHeaders; and it answers an
// Expect other than 100-continue with an empty 417. It has no hook for
// them, so limitedConn, which is every connection the edge accepts,
// recognises these writes by their shape and writes the edge's JSON error
// with the same status instead (jsonRefusal). No answer of a handler has
// that shape: net/http sorts a handler's headers, so Connection comes
// before Content-Type, and adds Date; hijacked streams write WebSocket
// frames, SSE events or JSON answers.
//
// Over TLS the connection below the TLS layer sees only records, so there
// the canned answers other than the plain-HTTP one stay as net/http
// writes them; HTTP/2 refuses with its own frames.
const cannedHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// plainHTTPToTLS is net/http's whole answer to plain HTTP on a TLS port.
const plainHTTPToTLS = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"

// maxCanned bounds the writes that can be a canned refusal: net/http's
// are all well under it.
const maxCanned = 512

// jsonRefusal returns the edge's JSON answer in place of p when p is one
// of net/http's canned refusals, and nil otherwise.
func jsonRefusal(p []byte) []byte {
	if len(p) > maxCanned || len(p) < len("HTTP/1.1 400 ") || !bytes.HasPrefix(p, []byte("HTTP/1.")) || p[8] != ' ' {
		return nil
	}
	if string(p) == plainHTTPToTLS {
		return refusalAnswer(http.StatusBadRequest, edge.ErrBadRequest.Code, "this port speaks HTTPS; use https://")
	}
	status, err := strconv.Atoi(string(p[9:12]))
	if err != nil {
		return nil
	}
	line, rest, _ := bytes.Cut(p, []byte("\r\n"))
	if status == http.StatusExpectationFailed && bytes.HasSuffix(rest, []byte("\r\n\r\n")) {
		return refusalAnswer(status, edge.ErrBadRequest.Code, "the Expect header asks for something other than 100-continue")
	}
	if !bytes.HasPrefix(p[len(line):], []byte(cannedHeaders)) {
		return nil
	}
	// The reason net/http gives after the status text, if any.
	_, reason, _ := bytes.Cut(line[len("HTTP/1.1 400"):], []byte(": "))
	switch {
	case status == http.StatusRequestHeaderFieldsTooLarge:
		return refusalAnswer(status, edge.ErrHeadersTooLarge.Code, fmt.Sprintf("the request line and headers are over the limit of %d bytes", maxHeaderBlock))
	case status == http.StatusNotImplemented:
		return refusalAnswer(status, edge.ErrBadRequest.Code, "unsupported Transfer-Encoding; send a Content-Length or chunked")
	case len(reason) > 0:
		return refusalAnswer(status, edge.ErrBadRequest.Code, "malformed HTTP request: "+string(reason))
	}
	return refusalAnswer(status, edge.ErrBadRequest.Code, "malformed HTTP request: a bad request line, header, Content-Length or Transfer-Encoding")
}

// refusalAnswer is a whole HTTP/1.1 answer with status and the JSON error
// body, after which the connection closes.
func refusalAnswer(status int, code, message string) []byte {
	body := marshalJSON(errorBody{errorDetail{code, message}})
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"+
		"X-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s\n",
		status, http.StatusText(status), len(body)+1, body)
}
