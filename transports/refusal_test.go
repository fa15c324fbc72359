package transports

import (
	"encoding/json"
	"strings"
	"testing"
)

// jsonRefusal rewrites net/http's canned refusals, whose shape it knows,
// and nothing else: not a handler's answer, not a plain-text error a
// handler might write, not a stream.
func TestJSONRefusal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		write  string
		status string // "": not rewritten
		code   string
	}{
		{"431", "HTTP/1.1 431 Request Header Fields Too Large" + cannedHeaders + "431 Request Header Fields Too Large", "431 Request Header Fields Too Large", "headers_too_large"},
		{"400", "HTTP/1.1 400 Bad Request" + cannedHeaders + "400 Bad Request", "400 Bad Request", "bad_request"},
		{"400 with a reason", "HTTP/1.1 400 Bad Request: missing required Host header" + cannedHeaders + "400 Bad Request: missing required Host header", "400 Bad Request", "bad_request"},
		{"501", "HTTP/1.1 501 Not Implemented" + cannedHeaders + "Unsupported transfer encoding", "501 Not Implemented", "bad_request"},
		{"505", "HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version" + cannedHeaders + "505 HTTP Version Not Supported: unsupported protocol version", "505 HTTP Version Not Supported", "bad_request"},
		{"417", "HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 0\r\n\r\n", "417 Expectation Failed", "bad_request"},
		{"plain HTTP to TLS", plainHTTPToTLS, "400 Bad Request", "bad_request"},

		{"a handler's JSON answer", "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n{}\n", "", ""},
		{"a handler's plain-text error", "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 12\r\n\r\nbad request\n", "", ""},
		{"a handler's close", "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", "", ""},
		{"the SSE head", "HTTP/1.1 200 OK\r\nCache-Control: no-cache, no-transform\r\nContent-Type: text/event-stream\r\n\r\n", "", ""},
		{"a WebSocket frame", "\x81\x05hello", "", ""},
		{"an SSE event quoting a refusal", "data: HTTP/1.1 400 Bad Request" + cannedHeaders, "", ""},
		{"a large write", "HTTP/1.1 400 Bad Request" + cannedHeaders + strings.Repeat("x", maxCanned), "", ""},
		{"a short write", "HTTP/1.1", "", ""},
		{"not a status", "HTTP/1.1 4x0 Bad Request" + cannedHeaders, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := jsonRefusal([]byte(tc.write))
			if tc.status == "" {
				if got != nil {
					t.Fatalf("rewritten to %q", got)
				}
				return
			}
			head, body, ok := strings.Cut(string(got), "\r\n\r\n")
			if !ok || !strings.HasPrefix(head, "HTTP/1.1 "+tc.status+"\r\n") || !strings.Contains(head, "\r\nContent-Type: application/json\r\n") || !strings.Contains(head, "\r\nConnection: close") {
				t.Fatalf("answer %q", got)
			}
			var e errorBody
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("body %q: %v", body, err)
			}
		})
	}
}
