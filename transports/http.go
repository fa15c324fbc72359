package transports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/edgeworks/edge/edge"
)

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func newErrorBody(err error) (errorBody, int) {
	code, status, msg := edge.Classify(err)
	return errorBody{errorDetail{code, msg}}, status
}

// writeError answers with {"error":{"code","message"}} and the status of
// the edge.Error that err wraps.
func writeError(w http.ResponseWriter, err error) {
	body, status := newErrorBody(err)
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONBytes(w, status, marshalJSON(v))
}

// marshalJSON encodes v without HTML escaping (the answers are JSON, not
// HTML), without the trailing newline.
func marshalJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// The header values of every JSON answer. They are assigned to answers'
// headers without a copy, which is safe because nothing writes into a
// header value slice in place (Header.Set replaces it, Header.Add appends,
// and these have no spare capacity).
var (
	headerJSON    = []string{"application/json"}
	headerNoStore = []string{"no-store"}
	headerNoSniff = []string{"nosniff"}
)

// writeJSONBytes answers with status and the JSON b and a newline, which it
// appends to b (so a caller that leaves a byte of capacity spares a copy).
func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	writeEncodedJSON(w, status, append(b, '\n'))
}

// writeEncodedJSON answers with status and b, a whole JSON body (its
// final newline included) in the Content-Encoding that w's header names,
// if any.
func writeEncodedJSON(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	// The keys are canonical: assigning skips Header.Set's checks.
	h["Content-Type"] = headerJSON
	h["Cache-Control"] = headerNoStore
	h["X-Content-Type-Options"] = headerNoSniff
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	w.Write(b)
}

// allowMethods answers 405 (or a CORS preflight) unless r uses one of
// methods; it reports whether the handler should go on.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, fmt.Errorf("%w: %s is not allowed here; use %s", edge.ErrMethodNotAllowed, r.Method, strings.Join(methods, " or ")))
	return false
}

// getOnly serves GET and HEAD with h, and answers 405 to other methods.
func getOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if allowMethods(w, r, http.MethodGet, http.MethodHead) {
			h(w, r)
		}
	}
}

// hsts adds Strict-Transport-Security with maxAge to answers over TLS;
// zero maxAge adds nothing.
func hsts(maxAge time.Duration, next http.Handler) http.Handler {
	if maxAge <= 0 {
		return next
	}
	value := []string{"max-age=" + strconv.FormatInt(int64(maxAge.Seconds()), 10)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header()["Strict-Transport-Security"] = value
		}
		next.ServeHTTP(w, r)
	})
}

// cors adds CORS headers for allowed origins and answers preflights.
func cors(allowed string, next http.Handler) http.Handler {
	origins := splitOrigins(allowed)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" {
			h := w.Header()
			switch {
			case allowed == "*":
				h.Set("Access-Control-Allow-Origin", "*")
			case originAllowed(origins, origin):
				h.Set("Access-Control-Allow-Origin", origin)
				h.Add("Vary", "Origin")
			}
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key, Last-Event-ID")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// limitHead answers 431 to a request whose line and headers, counted as
// a client writes them ("Name: value" lines), take more than
// maxHeaderBlock bytes: net/http's own limit lets a few more through (see
// maxHeaderBlock).
func limitHead(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := headBytes(r); n > maxHeaderBlock {
			writeError(w, fmt.Errorf("%w: the request line and headers take %d bytes, over the limit of %d", edge.ErrHeadersTooLarge, n, maxHeaderBlock))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// headBytes is the size of r's request line and headers written as
// "METHOD URI PROTO", "Name: value" lines with CRLF and the blank line.
// net/http keeps Host and Transfer-Encoding out of Header; Host is
// counted from r.Host.
func headBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + len("  \r\n\r\n")
	if r.Host != "" {
		n += len("Host: \r\n") + len(r.Host)
	}
	for name, values := range r.Header {
		for _, v := range values {
			n += len(name) + len(": \r\n") + len(v)
		}
	}
	return n
}

func splitOrigins(list string) []string {
	origins := strings.Split(list, ",")
	for i := range origins {
		origins[i] = strings.TrimSpace(origins[i])
	}
	return origins
}

// sameOrigin reports whether origin names the host the request was sent to.
func sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func originAllowed(origins []string, origin string) bool {
	for _, o := range origins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// checkQuery refuses a request whose query has a pair that net/url drops
// without a word (url.Values, and so r.URL.Query() and queryValue, hold
// none of them): a malformed percent-escape or a semicolon. Otherwise
// channel=a%ZZb would read as no channel at all. Every reader of the
// query after it sees every pair the client sent.
func checkQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := queryProblem(r.URL.RawQuery); err != nil {
			writeError(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// queryProblem returns the refusal of the first pair of rawQuery that
// url.ParseQuery would drop, naming its parameter, or nil. It allocates
// only for the refusal.
func queryProblem(rawQuery string) error {
	if !strings.ContainsAny(rawQuery, "%;") {
		return nil
	}
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		key, _, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		if strings.Contains(pair, ";") {
			return fmt.Errorf("%w: parameter %q is malformed: it holds a semicolon; separate parameters with & and write ; as %%3B", edge.ErrBadRequest, edge.Clip(key))
		}
		if i := badEscape(pair); i >= 0 {
			return fmt.Errorf("%w: parameter %q is malformed: %q is not a percent-escape; write %% as %%25", edge.ErrBadRequest, edge.Clip(key), pair[i:min(i+3, len(pair))])
		}
	}
	return nil
}

// badEscape returns the index of the first "%" in s that two hex digits
// do not follow, or -1.
func badEscape(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && (i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2])) {
			return i
		}
	}
	return -1
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// queryValue returns the first value of the parameter name in rawQuery,
// as url.ParseQuery(rawQuery).Get(name) does, but without building the
// map: a pair with a semicolon or a malformed escape is skipped, keys and
// values are unescaped (allocating only when they hold escapes). Unlike
// url.ParseQuery it has no limit on the number of pairs; it allocates
// nothing per pair, and the request line bounds the work.
func queryValue(rawQuery, name string) string {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		if key != name {
			if !strings.ContainsAny(key, "%+") {
				continue
			}
			if k, err := url.QueryUnescape(key); err != nil || k != name {
				continue
			}
		}
		if v, err := url.QueryUnescape(value); err == nil {
			return v
		}
	}
	return ""
}

// queryDuration reads a duration parameter ("30s", "1m" or plain seconds
// "30") within [lo, hi]; absent means def. A value outside the range is
// refused, naming the range, rather than silently clamped: a client that
// asked for 1s and got 5s would not know.
func queryDuration(r *http.Request, name string, def, lo, hi time.Duration) (time.Duration, error) {
	s := queryValue(r.URL.RawQuery, name)
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, err2 := strconv.ParseFloat(s, 64)
		if err2 != nil || math.IsNaN(secs) || math.IsInf(secs, 0) {
			return 0, fmt.Errorf("%w: %s=%q is not a duration (e.g. 30s or 30)", edge.ErrBadRequest, name, edge.Clip(s))
		}
		// Compared in seconds first: a huge value overflows a Duration.
		if secs < lo.Seconds() || secs > hi.Seconds() {
			return 0, outOfRange(name, s, lo, hi)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < lo || d > hi {
		return 0, outOfRange(name, s, lo, hi)
	}
	return d, nil
}

// queryInt reads an integer parameter within [lo, hi]; absent means def.
// A value outside the range is refused, naming the range.
func queryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := queryValue(r.URL.RawQuery, name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, outOfRange(name, s, lo, hi)
	case err != nil:
		return 0, fmt.Errorf("%w: %s=%q is not an integer", edge.ErrBadRequest, name, edge.Clip(s))
	case n < lo || n > hi:
		return 0, outOfRange(name, s, lo, hi)
	}
	return n, nil
}

// outOfRange is the refusal of parameter name's value s outside [lo, hi].
func outOfRange[T int | time.Duration](name, s string, lo, hi T) error {
	return fmt.Errorf("%w: %s=%s is out of range; use %v to %v", edge.ErrBadRequest, name, edge.Clip(s), lo, hi)
}
