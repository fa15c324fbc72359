package transports

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
)

// maxRequestID bounds the X-Request-Id the edge takes from a client or a
// proxy in front of it.
const maxRequestID = 64

type requestIDKey struct{}

// requestContext is a request's context with its id: one allocation for
// both the context value and the X-Request-Id header value, on the publish
// path of every backend.
type requestContext struct {
	context.Context
	id [1]string
}

func (c *requestContext) Value(key any) any {
	if key == (requestIDKey{}) {
		return c.id[0]
	}
	return c.Context.Value(key)
}

// requestIDs gives every request an id, answered in X-Request-Id and
// attached to the log lines of the request (see logWithRequestID): the
// request's own X-Request-Id when it is short and plain (a proxy's id
// carries through), else a new one, unique within the process and unlikely
// to repeat across processes. At debug level it logs each request.
func requestIDs(log *slog.Logger, next http.Handler) http.Handler {
	var prefix [5]byte
	rand.Read(prefix[:])
	base := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(prefix[:]) + "-"
	var n atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &requestContext{Context: r.Context()}
		c.id[0] = r.Header.Get("X-Request-Id")
		if !plainRequestID(c.id[0]) {
			var b [32]byte
			c.id[0] = string(strconv.AppendUint(append(b[:0], base...), n.Add(1), 36))
		}
		w.Header()["X-Request-Id"] = c.id[:]
		r = r.WithContext(c)
		if log.Enabled(r.Context(), slog.LevelDebug) {
			log.DebugContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path, "client", remoteIP(r.RemoteAddr), "proto", r.Proto)
		}
		next.ServeHTTP(w, r)
	})
}

// plainRequestID reports whether id is 1 to maxRequestID bytes of letters,
// digits and -_.:, safe to log and to answer.
func plainRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// requestIDHandler adds request_id to records logged with the context of
// a request (the *Context logging methods).
type requestIDHandler struct{ slog.Handler }

// logWithRequestID returns log, whose lines logged with a request's
// context carry its request_id.
func logWithRequestID(log *slog.Logger) *slog.Logger {
	return slog.New(requestIDHandler{log.Handler()})
}

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
