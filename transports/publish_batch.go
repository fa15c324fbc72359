package transports

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/edge/auth"
	"github.com/edgeworks/edge/transports/metrics"
)

// batchItemOverhead is what a batch body may hold per message besides its
// payload in base64: the field names, a channel and an event of the
// longest, quoting and separators.
const batchItemOverhead = 1 << 10

// maxBatchBody returns the largest body of a batch publish: MaxBatch
// messages, each with a payload of MaxPayload bytes in base64.
func (s *Server) maxBatchBody() int {
	return s.cfg.MaxBatch * (base64.StdEncoding.EncodedLen(s.cfg.MaxPayload) + batchItemOverhead)
}

// handlePublishBatch serves POST /v1/publish/batch: a JSON body of
// {"messages":[{"channel","event","data" or "data_base64"}...]}, answered
// with {"results":[...]}, one result per message in order: {"channel",
// "id"} once stored, or {"channel","error":{"code","message"}} with the
// error a single publish of that message would have had. Each message is
// checked as POST /v1/publish checks it; the messages of one channel are
// stored together with consecutive ids, or none is (see
// edge.BatchPublisher). A request that is not such a body (malformed
// JSON, an unknown field, no messages, more than MaxBatch) is refused as
// a whole.
func (s *Server) handlePublishBatch(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	if err := s.crossSite(r); err != nil {
		writeError(w, err)
		return
	}
	claims, err := s.access.identifyPublisher(r)
	if err != nil {
		setRetryAfter(w, err)
		writeError(w, err)
		return
	}
	body, err := readPayload(w, r, s.maxBatchBody(), s.cfg.BodyTimeout)
	if err != nil {
		if errors.Is(err, edge.ErrPayloadTooLarge) {
			err = fmt.Errorf("%w: a batch body is at most %d bytes (%d messages of %d bytes in base64)",
				edge.ErrPayloadTooLarge, s.maxBatchBody(), s.cfg.MaxBatch, s.cfg.MaxPayload)
		}
		writeError(w, err)
		return
	}
	msgs, err := s.parseBatch(body)
	if err != nil {
		writeError(w, err)
		return
	}

	// Each message gets the checks and the error of a single publish, in
	// the same order; those that pass are published together.
	errs := make([]error, len(msgs))
	pubs := make([]edge.Publication, 0, len(msgs))
	publisher := s.access.publisher(r, claims)
	for i := range msgs {
		m := &msgs[i]
		var p edge.Publication
		if p, errs[i] = s.checkBatchMessage(publisher, claims, m); errs[i] == nil {
			pubs = append(pubs, p)
		}
	}
	ctx := r.Context()
	if s.tracer != nil && s.telemetry.Propagator != nil {
		ctx = s.telemetry.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	done := s.publishBatch(ctx, metrics.HTTP, pubs)

	ids := make([]edge.ID, len(msgs))
	var failed error
	for i := range msgs {
		if errs[i] == nil {
			ids[i], errs[i] = done[0].ID, done[0].Err
			done = done[1:]
			if errs[i] != nil {
				failed = errs[i]
			}
		}
	}
	if failed != nil {
		s.log.WarnContext(r.Context(), "publish failed", "err", failed)
	}
	// A channel is valid UTF-8 (the decoder made it so); an id is at most
	// 41 bytes.
	b := make([]byte, 0, 16+len(msgs)*(len(`{"channel":"","id":""},`)+41+16))
	b = append(b, `{"results":[`...)
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"channel":`...)
		b = appendJSONString(b, m.channel)
		if errs[i] == nil {
			b = append(b, `,"id":"`...)
			b = ids[i].AppendTo(b)
			b = append(b, `"}`...)
			continue
		}
		code, _, msg := edge.Classify(errs[i])
		b = append(b, `,"error":{"code":`...)
		b = appendJSONString(b, code)
		b = append(b, `,"message":`...)
		b = appendJSONString(b, msg)
		b = append(b, `}}`...)
	}
	writeJSONBytes(w, http.StatusOK, append(b, `]}`...))
}

// parseBatch decodes a batch body: one JSON object with the field
// "messages", 1 to MaxBatch of them, and no other field.
func (s *Server) parseBatch(body []byte) ([]batchItem, error) {
	items, err := decodeBatch(body)
	if err != nil {
		return nil, err
	}
	switch n := len(items); {
	case n == 0:
		return nil, fmt.Errorf(`%w: the body has no messages ({"messages":[...]})`, edge.ErrBadRequest)
	case n > s.cfg.MaxBatch:
		return nil, fmt.Errorf("%w: %d messages; a batch holds at most %d", edge.ErrPayloadTooLarge, n, s.cfg.MaxBatch)
	}
	return items, nil
}

// checkBatchMessage checks m as handlePublish checks a publish by
// publisher with claims, and returns it as a publication.
func (s *Server) checkBatchMessage(publisher httpPublisher, claims *auth.Claims, m *batchItem) (edge.Publication, error) {
	if err := edge.ValidateChannel(m.channel); err != nil {
		return edge.Publication{}, err
	}
	err := s.access.publishBy(publisher, claims, m.channel)
	if err == nil && s.publishes != nil {
		err = s.publishes.allow(publisher.who, "publishes by one publisher")
	}
	if err != nil {
		return edge.Publication{}, err
	}
	if err := edge.ValidateEvent(m.event); err != nil {
		return edge.Publication{}, err
	}
	if m.key != "" {
		if err := edge.ValidateKey(m.key); err != nil {
			return edge.Publication{}, err
		}
	}
	data := m.data
	switch {
	case m.hasData == m.isBase64:
		return edge.Publication{}, fmt.Errorf(`%w: a message has exactly one of "data" (text) and "data_base64" (bytes in standard base64)`, edge.ErrBadRequest)
	case m.isBase64:
		if base64.StdEncoding.DecodedLen(len(m.data)) > s.cfg.MaxPayload+2 {
			return edge.Publication{}, payloadTooLarge(s.cfg.MaxPayload)
		}
		data = make([]byte, base64.StdEncoding.DecodedLen(len(m.data)))
		n, err := base64.StdEncoding.Decode(data, m.data)
		if err != nil {
			return edge.Publication{}, fmt.Errorf("%w: data_base64 is not standard base64: %v", edge.ErrBadRequest, err)
		}
		data = data[:n]
	}
	if len(data) > s.cfg.MaxPayload {
		return edge.Publication{}, payloadTooLarge(s.cfg.MaxPayload)
	}
	return edge.Publication{Channel: m.channel, Event: m.event, Data: data, Key: m.key}, nil
}

// publishBatch stores pubs and counts each stored message as a publish
// from src, with the broker's PublishBatch, or one Publish after the
// other when the broker has none (then a batch is not atomic per
// channel). With tracing on it is the span "publish_batch" around the
// span "store", as publish is.
func (s *Server) publishBatch(ctx context.Context, src metrics.Source, pubs []edge.Publication) []edge.Published {
	if len(pubs) == 0 {
		return nil
	}
	var span, store trace.Span
	storeCtx := ctx
	if s.tracer != nil {
		kind := trace.SpanKindServer
		if src != metrics.HTTP {
			kind = trace.SpanKindInternal
		}
		ctx, span = s.tracer.Start(ctx, "publish_batch", trace.WithSpanKind(kind), trace.WithAttributes(
			attribute.String("edge.source", src.String()),
			attribute.Int("edge.messages", len(pubs)),
		))
		defer span.End()
		storeCtx, store = s.tracer.Start(ctx, "store")
	}
	var done []edge.Published
	if b, ok := s.broker.(edge.BatchPublisher); ok {
		done = b.PublishBatch(storeCtx, pubs)
	} else {
		done = make([]edge.Published, len(pubs))
		for i, p := range pubs {
			done[i].ID, _, done[i].Err = s.storeMessage(storeCtx, p, "")
		}
	}
	stored := 0
	var failed error
	for _, d := range done {
		if d.Err == nil {
			s.metrics.Published(src)
			stored++
		} else {
			failed = d.Err
		}
	}
	if s.tracer != nil {
		if failed != nil {
			store.RecordError(failed)
			store.SetStatus(codes.Error, "store failed")
			span.SetStatus(codes.Error, "store failed")
		}
		store.End()
		span.SetAttributes(attribute.Int("edge.stored", stored))
	}
	return done
}
