package transports

import (
	"net/http"
	"strconv"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
)

// handleHistory serves GET /v1/history?channel=A[&since=CURSOR][&limit=N]:
// a page of retained messages after the cursor (from the oldest retained
// without one), oldest first. It is read under the rules of subscribing
// to the channel: the same token sources, the same anonymous patterns.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	channel, ok := s.readableChannel(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
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

// readableChannel reads the channel of a GET that reads a channel's state
// (history, presence) under the rules of subscribing to it: the method,
// the channel's name, the credentials and the right to subscribe. It
// answers the error and reports false when one fails.
func (s *Server) readableChannel(w http.ResponseWriter, r *http.Request) (channel string, ok bool) {
	if !allowMethods(w, r, http.MethodGet) {
		return "", false
	}
	channel = r.URL.Query().Get("channel")
	if err := edge.ValidateChannel(channel); err != nil {
		writeError(w, err)
		return "", false
	}
	claims, err := s.access.identify(r)
	if err == nil {
		err = s.access.subscribe(claims, channel)
	}
	if err != nil {
		writeError(w, err)
		return "", false
	}
	return channel, true
}
