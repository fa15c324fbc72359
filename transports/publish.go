package transports

import (
	"go.opentelemetry.io/otel/propagation"

	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
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
	data, err := readPayload(w, r, s.cfg.MaxPayload, s.cfg.BodyTimeout)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx := r.Context()
	if s.tracer != nil && s.telemetry.Propagator != nil {
		ctx = s.telemetry.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	id, err := s.publish(ctx, metrics.HTTP, channel, event, data)
	if err != nil {
		s.log.WarnContext(r.Context(), "publish failed", "err", err)
		writeError(w, err)
		return
	}
	// A valid channel needs no escaping; an id is at most 41 bytes.
	b := make([]byte, 0, len(`{"channel":"","id":""}`)+len(channel)+41+1)
	b = append(b, `{"channel":`...)
	b = appendJSONString(b, channel)
	b = append(b, `,"id":"`...)
	b = id.AppendTo(b)
	writeJSONBytes(w, http.StatusOK, append(b, `"}`...))
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

// handleHistory serves GET /v1/history?channel=A[&since=CURSOR][&limit=N]:
// a page of retained messages after the cursor (from the oldest retained
// without one), oldest first. It is read under the rules of subscribing
// to the channel: the same token sources, the same anonymous patterns.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet) {
		return
	}
	q := r.URL.Query()
	channel := q.Get("channel")
	if err := edge.ValidateChannel(channel); err != nil {
		writeError(w, err)
		return
	}
	claims, err := s.access.identify(r)
	if err == nil {
		err = s.access.subscribe(claims, channel)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	limit, err := queryInt(r, "limit", 100, 1, maxPageMessages)
	if err != nil {
		writeError(w, err)
		return
	}
	var after edge.ID
	since := q.Get("since")
	if since != "" {
		c, err := resume.ParseCursor(since, []string{channel})
		if err != nil {
			writeError(w, err)
			return
		}
		after, _ = c.Get(channel)
	}
	page, err := s.broker.History(r.Context(), channel, after, limit+1)
	if err != nil {
		writeError(w, err)
		return
	}
	more := len(page.Messages) > limit
	if more {
		page.Messages = page.Messages[:limit]
	}
	cursor := after
	if page.Ahead {
		cursor = page.Last
	}
	if n := len(page.Messages); n > 0 {
		cursor = page.Messages[n-1].ID
	} else if since == "" {
		if cursor, err = s.broker.Last(r.Context(), channel); err != nil {
			writeError(w, err)
			return
		}
	}
	b := []byte(`{"channel":`)
	b = appendJSONString(b, channel)
	b = append(b, `,"messages":`...)
	b = appendMessages(b, page.Messages)
	b = append(b, `,"cursor":"`...)
	b = cursor.AppendTo(b)
	b = append(b, `","gap":`...)
	b = strconv.AppendBool(b, since != "" && page.Gap)
	b = append(b, `,"more":`...)
	b = strconv.AppendBool(b, more)
	writeJSONBytes(w, http.StatusOK, append(b, '}'))
}

// maxPageMessages bounds the messages in one history or long-poll answer.
const maxPageMessages = 1000

// appendMessages appends msgs as a JSON array of message objects.
func appendMessages(b []byte, msgs []edge.Message) []byte {
	b = append(b, '[')
	for i := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMessageJSON(b, &msgs[i])
	}
	return append(b, ']')
}
