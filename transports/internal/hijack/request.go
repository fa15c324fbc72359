package hijack

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
)

// RequestHead is an HTTP/1.1 request line and header block that
// ParseRequestHead accepted, as net/http's server would read it.
type RequestHead struct {
	Method string
	// Target is the request target, in origin form (a path and a query).
	Target string
	// Host is the Host field's value.
	Host string
	// Header holds every field but Host, with canonical keys and values
	// trimmed of surrounding whitespace, as in http.Request.Header.
	Header http.Header
	// ContentLength is the Content-Length field's value, -1 when absent.
	ContentLength int64
	// Close reports Connection: close.
	Close bool
}

// ErrNotPlain refuses a request head that is not in the plain subset of
// HTTP/1.1 that ParseRequestHead reads; net/http is to read it.
var ErrNotPlain = errors.New("not a plain HTTP/1.1 request head")

// The bounds of a plain request head.
const (
	maxHeadFields   = 64
	maxLengthDigits = 15
)

// ParseRequestHead parses the request head at the start of b. It returns
// the head and its length in bytes (up to and including the blank line);
// a length of 0 with a nil error when b holds no complete head yet; and
// ErrNotPlain for a head outside the plain subset it reads, which is
// everything a backend's HTTP client writes for a simple request:
//
//   - a request line "METHOD /target HTTP/1.1", the method in capital
//     letters, the target in origin form of URL characters with valid
//     percent escapes;
//   - fields "Name: value" of letters, digits and hyphens in names,
//     visible ASCII, spaces and tabs in values; no folded lines;
//   - lines ending in CRLF;
//   - exactly one Host of host characters; at most one Content-Length of
//     digits; Connection only "close" or "keep-alive"; no
//     Transfer-Encoding, Expect, Upgrade or Pragma (which net/http turns
//     into Cache-Control);
//   - at most 64 fields.
//
// What it accepts, net/http's server reads the same way (FuzzRequestHead
// holds it to that), so a connection may be read here for simple requests
// and handed to net/http at the first other one, with nothing read
// differently.
func ParseRequestHead(b []byte) (RequestHead, int, error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if hasBareLF(b) {
			return RequestHead{}, 0, ErrNotPlain
		}
		return RequestHead{}, 0, nil
	}
	n := end + 4
	head := string(b[:end+2]) // one string for every name and value
	h := RequestHead{ContentLength: -1}
	line, rest, _ := strings.Cut(head, "\r\n")
	method, target, proto, ok := requestLine(line)
	if !ok || proto != "HTTP/1.1" {
		return RequestHead{}, 0, ErrNotPlain
	}
	h.Method, h.Target = method, target
	// One backing array holds every field's value slice (as textproto
	// does), a name given twice aside.
	count := strings.Count(rest, "\r\n")
	if count > maxHeadFields {
		return RequestHead{}, 0, ErrNotPlain
	}
	values := make([]string, count)
	fields := 0
	for rest != "" {
		line, rest, _ = strings.Cut(rest, "\r\n")
		fields++
		name, value, ok := field(line)
		if !ok || fields > maxHeadFields {
			return RequestHead{}, 0, ErrNotPlain
		}
		switch name {
		case "Host":
			if h.Host != "" || !plainHost(value) {
				return RequestHead{}, 0, ErrNotPlain
			}
			h.Host = value
			continue
		case "Content-Length":
			if h.ContentLength >= 0 || !digits(value, maxLengthDigits) {
				return RequestHead{}, 0, ErrNotPlain
			}
			h.ContentLength = 0
			for i := range len(value) {
				h.ContentLength = h.ContentLength*10 + int64(value[i]-'0')
			}
		case "Connection":
			switch {
			case h.Header["Connection"] != nil:
				return RequestHead{}, 0, ErrNotPlain
			case asciiEqualFold(value, "close"):
				h.Close = true
			case !asciiEqualFold(value, "keep-alive"):
				return RequestHead{}, 0, ErrNotPlain
			}
		case "Transfer-Encoding", "Expect", "Upgrade", "Pragma":
			return RequestHead{}, 0, ErrNotPlain
		}
		if h.Header == nil {
			h.Header = make(http.Header, len(values))
		}
		if vs := h.Header[name]; vs != nil {
			h.Header[name] = append(vs, value)
			continue
		}
		values[fields-1] = value
		h.Header[name] = values[fields-1 : fields : fields]
	}
	if h.Host == "" {
		return RequestHead{}, 0, ErrNotPlain
	}
	if h.Header == nil {
		h.Header = http.Header{}
	}
	return h, n, nil
}

// requestLine splits a request line, checking the method and the target.
func requestLine(line string) (method, target, proto string, ok bool) {
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method == "" || len(target) == 0 || target[0] != '/' {
		return "", "", "", false
	}
	for i := range len(method) {
		if c := method[i]; c < 'A' || c > 'Z' {
			return "", "", "", false
		}
	}
	for i := 0; i < len(target); i++ {
		c := target[i]
		switch {
		case c == '%':
			if i+2 >= len(target) || !isHex(target[i+1]) || !isHex(target[i+2]) {
				return "", "", "", false
			}
			i += 2
		case !targetBytes[c]:
			return "", "", "", false
		}
	}
	return method, target, proto, true
}

// field splits a header line into its canonical name and its value
// trimmed of spaces and tabs.
func field(line string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(line, ":")
	if !ok || name == "" {
		return "", "", false
	}
	for i := range len(name) {
		if !nameBytes[name[i]] {
			return "", "", false
		}
	}
	for i := range len(value) {
		if c := value[i]; (c < ' ' || c > '~') && c != '\t' {
			return "", "", false
		}
	}
	return canonicalName(name), trimSpace(value), true
}

// canonicalName is name as http.CanonicalHeaderKey writes a name of
// letters, digits and hyphens, allocating only when it changes.
func canonicalName(name string) string {
	upper := true
	for i := range len(name) {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return http.CanonicalHeaderKey(name)
		}
		upper = c == '-'
	}
	return name
}

// plainHost reports whether v is a non-empty host of a name or an address
// and an optional port.
func plainHost(v string) bool {
	if v == "" {
		return false
	}
	for i := range len(v) {
		if !hostBytes[v[i]] {
			return false
		}
	}
	return true
}

func digits(v string, max int) bool {
	if v == "" || len(v) > max {
		return false
	}
	for i := range len(v) {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// hasBareLF reports whether b holds an LF not preceded by CR.
func hasBareLF(b []byte) bool {
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
	}
	return false
}

// The bytes of a plain head's parts, as tables.
var (
	alnums      = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	targetBytes = byteSet(alnums + "-._~!$&'()*+,;=:@/?") // unescaped in a target
	nameBytes   = byteSet(alnums + "-")                   // in a field name
	hostBytes   = byteSet(alnums + ".-:[]")               // in a Host
)

func byteSet(s string) (set [256]bool) {
	for i := range len(s) {
		set[s[i]] = true
	}
	return set
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func trimSpace(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// asciiEqualFold reports whether s is lower, ignoring ASCII case.
func asciiEqualFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
