package transports

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/transports/metrics"
)

// handlePublish serves POST /v1/publish?channel=A[&event=TYPE]: the body is
// the payload; the answer is {"channel","id"} once the message is stored.
// It is the hot path of a publishing backend, so it reads the two
// parameters without building url.Values and encodes the answer by hand.
func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	if err := s.crossSite(r); err != nil {
		writeError(w, err)
		return
	}
	channel, event := queryValue(r.URL.RawQuery, "channel"), queryValue(r.URL.RawQuery, "event")
	if err := edge.ValidateChannel(channel); err != nil {
		writeError(w, err)
		return
	}
	// Publishing takes credentials from the Authorization header only: a
	// cookie would let another site's form publish as its visitor.
	claims, err := s.access.identifyPublisher(r)
	var who string
	if err == nil {
		who, err = s.access.publish(r, claims, channel)
	}
	if err == nil && s.publishes != nil {
		err = s.publishes.allow(who, "publishes by one publisher")
	}
	if err != nil {
		setRetryAfter(w, err)
		writeError(w, err)
		return
	}
	if err := edge.ValidateEvent(event); err != nil {
		writeError(w, err)
		return
	}
	once, err := idempotencyKey(r.Header)
	if err != nil {
		writeError(w, err)
		return
	}
	key := queryValue(r.URL.RawQuery, "key")
	if key != "" {
		if err := edge.ValidateKey(key); err != nil {
			writeError(w, err)
			return
		}
	}
	data, err := readPayload(w, r, s.cfg.MaxPayload, s.cfg.BodyTimeout)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx := r.Context()
	if s.tracer != nil && s.telemetry.Propagator != nil {
		ctx = s.telemetry.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	id, replayed, err := s.publish(ctx, metrics.HTTP, edge.Publication{Channel: channel, Event: event, Data: data, Key: key}, once)
	if err != nil {
		s.log.WarnContext(r.Context(), "publish failed", "err", err)
		writeError(w, err)
		return
	}
	if replayed {
		w.Header()["Idempotent-Replayed"] = headerTrue
	}
	// A valid channel needs no escaping; an id is at most 41 bytes.
	b := make([]byte, 0, len(`{"channel":"","id":""}`)+len(channel)+41+1)
	b = append(b, `{"channel":`...)
	b = appendJSONString(b, channel)
	b = append(b, `,"id":"`...)
	b = id.AppendTo(b)
	writeJSONBytes(w, http.StatusOK, append(b, `"}`...))
}

// headerTrue is the value of the Idempotent-Replayed header.
var headerTrue = []string{"true"}

// idempotencyKey returns the request's Idempotency-Key, "" when it has
// none, or an error wrapping edge.ErrBadRequest for an invalid one or
// several.
func idempotencyKey(h http.Header) (string, error) {
	keys := h["Idempotency-Key"]
	switch len(keys) {
	case 0:
		return "", nil
	case 1:
		return keys[0], edge.ValidateIdempotencyKey(keys[0])
	}
	return "", fmt.Errorf("%w: one Idempotency-Key header, not %d", edge.ErrBadRequest, len(keys))
}

// publish stores p from src and counts it; with an idempotency key once,
// a repeat of a publish within the store's window stores nothing
// and returns the first one's id, replayed (not counted). With tracing on it is
// the span "publish" (a child of the caller's traceparent, if any) around
// the span "store"; the hub's "fanout" span is a child of "store" where the
// broker relays synchronously (the embedded store), so the trace shows
// store and delivery work.
func (s *Server) publish(ctx context.Context, src metrics.Source, p edge.Publication, once string) (edge.ID, bool, error) {
	if s.tracer == nil {
		id, replayed, err := s.storeMessage(ctx, p, once)
		if err == nil && !replayed {
			s.metrics.Published(src)
		}
		return id, replayed, err
	}
	kind := trace.SpanKindServer
	if src != metrics.HTTP {
		kind = trace.SpanKindInternal
	}
	ctx, span := s.tracer.Start(ctx, "publish", trace.WithSpanKind(kind), trace.WithAttributes(
		attribute.String("edge.source", src.String()),
		attribute.String("edge.channel", p.Channel),
		attribute.Int("edge.payload_bytes", len(p.Data)),
	))
	defer span.End()
	storeCtx, store := s.tracer.Start(ctx, "store")
	id, replayed, err := s.storeMessage(storeCtx, p, once)
	if err != nil {
		store.RecordError(err)
		store.SetStatus(codes.Error, "store failed")
		store.End()
		span.SetStatus(codes.Error, "store failed")
		return id, false, err
	}
	store.End()
	span.SetAttributes(attribute.String("edge.message_id", id.String()), attribute.Bool("edge.replayed", replayed))
	if !replayed {
		s.metrics.Published(src)
	}
	return id, replayed, nil
}

// storeMessage stores p with the broker, with the idempotency key once
// when not "".
func (s *Server) storeMessage(ctx context.Context, p edge.Publication, once string) (edge.ID, bool, error) {
	if p.Key != "" {
		keyed, ok := s.broker.(edge.KeyPublisher)
		if !ok {
			return edge.ID{}, false, fmt.Errorf("%w: this edge's store does not keep message keys", edge.ErrUnavailable)
		}
		return keyed.PublishKeyed(ctx, p, once)
	}
	if once == "" {
		id, err := s.broker.Publish(ctx, p.Channel, p.Event, p.Data)
		return id, false, err
	}
	op, ok := s.broker.(edge.OncePublisher)
	if !ok {
		return edge.ID{}, false, fmt.Errorf("%w: this edge's store does not remember idempotency keys", edge.ErrUnavailable)
	}
	return op.PublishOnce(ctx, p.Channel, p.Event, p.Data, once)
}

// crossSite refuses a publish that a browser sends for a page of another
// site. A form or a text/plain fetch needs no CORS preflight: the browser
// sends it and only hides the answer, so without this check any page
// open in a browser on the edge's host could publish anonymously from
// loopback. Such a request has an Origin that is neither the edge's own
// nor allowed by --cors-origin, or, without Origin, Sec-Fetch-Site:
// cross-site. Backends send neither header.
func (s *Server) crossSite(r *http.Request) error {
	if origin := r.Header.Get("Origin"); origin != "" {
		if s.checkOrigin(r) {
			return nil
		}
		return fmt.Errorf("%w: publishing from a page of origin %q; the edge allows its own origin and --cors-origin", edge.ErrForbidden, edge.Clip(origin))
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" && s.cfg.CORSOrigin != "*" {
		return fmt.Errorf("%w: publishing from a page of another site (Sec-Fetch-Site: cross-site) without an Origin that --cors-origin allows", edge.ErrForbidden)
	}
	return nil
}

// readPayload reads a request body of at most max bytes, within timeout of
// each other: a body that brings no byte for timeout is cut with
// edge.ErrRequestTimeout (the connection is then closed, as the rest of
// the body may still come). Memory follows the bytes that arrived, not
// the Content-Length a client announced (see readBody).
func readPayload(w http.ResponseWriter, r *http.Request, max int, timeout time.Duration) ([]byte, error) {
	if r.ContentLength > int64(max) {
		return nil, payloadTooLarge(max)
	}
	body := r.Body
	if r.ContentLength < 0 {
		// Of unknown length: bounded here. A known length is its bound.
		body = http.MaxBytesReader(w, body, int64(max))
	}
	// The deadline is on the connection (HTTP/1) or the stream (HTTP/2).
	// A ResponseWriter without deadlines (a test's recorder) has a body
	// that cannot stall, so ErrNotSupported is ignored.
	rc := http.NewResponseController(w)
	data, err := readBody(body, r.ContentLength, max, rc, timeout)
	if err == nil {
		// net/http lifts the deadline once an HTTP/1 body ends, to watch
		// for the client leaving; no deadline of the body outlives it on
		// HTTP/2 either.
		rc.SetReadDeadline(time.Time{})
		return data, nil
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig), errors.Is(err, errTooBig):
		return nil, payloadTooLarge(max)
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.Header().Set("Connection", "close")
		return nil, fmt.Errorf("%w: no byte of the body came for %v", edge.ErrRequestTimeout, timeout)
	}
	return nil, fmt.Errorf("%w: reading the body: %v", edge.ErrBadRequest, err)
}

// firstBodyChunk is the buffer a body is first read into: a whole typical
// payload.
const firstBodyChunk = 4 << 10

// readBody reads body, of size bytes (-1: unknown, up to max and one byte
// more, so that a reader that bounds it to max can say it is over),
// setting rc's read deadline timeout ahead before each read, into a buffer
// that grows with what arrives (see readAtMost): a client that announces
// 16 MiB and sends 10 bytes costs firstBodyChunk, not 16 MiB. A body of
// known size ends in a buffer of exactly that size.
func readBody(body io.Reader, size int64, max int, rc *http.ResponseController, timeout time.Duration) ([]byte, error) {
	limit := max + 1
	if size >= 0 {
		limit = int(min(size, int64(limit)))
	}
	return readAtMost(body, limit, firstBodyChunk, func() { rc.SetReadDeadline(time.Now().Add(timeout)) })
}

func payloadTooLarge(max int) error {
	return fmt.Errorf("%w: the payload limit is %d bytes", edge.ErrPayloadTooLarge, max)
}
