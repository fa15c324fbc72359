package transports

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/edge/auth"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports/metrics"
)

// transport is one of the three ways to subscribe.
type transport string

const (
	transportWS   transport = "ws"
	transportSSE  transport = "sse"
	transportPoll transport = "poll"
)

// metric returns t as a metrics attribute.
func (t transport) metric() metrics.Transport {
	switch t {
	case transportWS:
		return metrics.WS
	case transportSSE:
		return metrics.SSE
	}
	return metrics.Poll
}

// subscribeRequest is a parsed GET /v1/subscribe.
type subscribeRequest struct {
	transport transport
	channels  []string
	cursor    resume.Cursor // positions given by the client (since= or Last-Event-ID)
	heartbeat time.Duration
	claims    *auth.Claims  // the client's token, nil without one
	presence  bool          // presence=1: hear the joins and leaves of channels that keep presence
	info      string        // info=: what the client says about itself in presence
	conflate  time.Duration // conflate=: the conflation window of the URL's channels; 0: none
}

// expiry is when the request's token expires; zero for none.
func (req *subscribeRequest) expiry() time.Time {
	if req.claims == nil {
		return time.Time{}
	}
	return req.claims.Expiry
}

// negotiate picks the transport: transport= forces one; otherwise a
// WebSocket upgrade gets WebSocket, "Accept: text/event-stream" gets SSE and
// anything else long-polling.
func negotiate(r *http.Request) (transport, error) {
	switch t := transport(queryValue(r.URL.RawQuery, "transport")); t {
	case transportWS:
		if !websocket.IsWebSocketUpgrade(r) {
			return "", fmt.Errorf("%w: transport=ws needs a WebSocket upgrade request", edge.ErrBadRequest)
		}
		return t, nil
	case transportSSE, transportPoll:
		return t, nil
	case "":
	default:
		return "", fmt.Errorf("%w: transport=%q; use ws, sse or poll", edge.ErrBadRequest, edge.Clip(string(t)))
	}
	if websocket.IsWebSocketUpgrade(r) {
		return transportWS, nil
	}
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		return transportSSE, nil
	}
	return transportPoll, nil
}

// parseSubscribe reads the channels, the cursor and the heartbeat of a
// subscribe request. The Last-Event-ID header, which EventSource sends when
// it reconnects, wins over since=.
func parseSubscribe(r *http.Request, cfg Config) (subscribeRequest, error) {
	var req subscribeRequest
	t, err := negotiate(r)
	if err != nil {
		return req, err
	}
	req.transport = t
	q := r.URL.Query()
	req.channels = q["channel"]
	if len(req.channels) == 0 && t != transportWS {
		return req, fmt.Errorf("%w: channel= is required (repeat it for several channels)", edge.ErrBadChannel)
	}
	if len(req.channels) > cfg.Hub.MaxChannels {
		return req, fmt.Errorf("%w: %d channels requested, a connection may subscribe to at most %d", edge.ErrTooManyChannels, len(req.channels), cfg.Hub.MaxChannels)
	}
	for i, ch := range req.channels {
		if err := edge.ValidateChannel(ch); err != nil {
			return req, err
		}
		for _, prev := range req.channels[:i] {
			if prev == ch {
				return req, fmt.Errorf("%w: channel %q is named twice", edge.ErrBadChannel, ch)
			}
		}
	}
	since := q.Get("since")
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		since = id
	}
	if since != "" {
		if len(req.channels) == 0 {
			return req, fmt.Errorf("%w: since= needs channel=", edge.ErrBadCursor)
		}
		if req.cursor, err = resume.ParseCursor(since, req.channels); err != nil {
			return req, err
		}
	}
	if req.presence, err = queryBool(r, "presence"); err != nil {
		return req, err
	}
	req.info = q.Get("info")
	if err := edge.ValidatePresenceInfo(req.info); err != nil {
		return req, err
	}
	if req.conflate, err = queryConflate(q); err != nil {
		return req, err
	}
	req.heartbeat, err = queryDuration(r, "heartbeat", cfg.Heartbeat, cfg.HeartbeatMin, cfg.HeartbeatMax)
	return req, err
}

// queryConflate reads conflate=, the conflation window (see
// edge.ParseConflate); absent is 0, none. Given twice it is refused: a
// client that asked for two windows would not know which it got.
func queryConflate(q url.Values) (time.Duration, error) {
	vs := q["conflate"]
	switch len(vs) {
	case 0:
		return 0, nil
	case 1:
		return edge.ParseConflate(vs[0])
	}
	return 0, fmt.Errorf("%w: conflate= is given %d times; give it once", edge.ErrBadRequest, len(vs))
}

// queryBool reads a flag parameter: 1 or true, 0 or false; absent is
// false.
func queryBool(r *http.Request, name string) (bool, error) {
	switch v := queryValue(r.URL.RawQuery, name); v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	default:
		return false, fmt.Errorf("%w: %s=%q; use 1 or 0", edge.ErrBadRequest, name, edge.Clip(v))
	}
}

// presenceSession sets up sess for presence as req asks: it hears joins
// and leaves with presence=1 and, when member, it is a member of the
// presence channels it subscribes, as the token's subject with info=.
func (s *Server) presenceSession(sess *edge.Session, req *subscribeRequest, member bool) {
	if !s.hub.PresenceEnabled() {
		return
	}
	sess.HearPresence(req.presence)
	if member {
		var sub string
		if req.claims != nil {
			sub = req.claims.Subject
		}
		sess.SetMember(sub, req.info)
	}
}

// since returns the client's position in channel, or nil.
func (req *subscribeRequest) since(channel string) *edge.ID {
	if id, ok := req.cursor.Get(channel); ok {
		return &id
	}
	return nil
}

func (s *Server) handleSubscribe(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet) {
		return
	}
	req, err := parseSubscribe(r, s.cfg)
	if err == nil && req.transport != transportPoll {
		// New streams, per connection (HTTP/2 carries many). A long-poll's
		// pace is its messages'; connection limits bound it.
		err = connSubscribes(r, s.cfg.SubscribeRate)
	}
	if err == nil {
		req.claims, err = s.access.identify(r)
	}
	for _, ch := range req.channels {
		if err != nil {
			break
		}
		err = s.access.subscribe(req.claims, ch)
	}
	if err == nil && req.cursor.Len() > 0 {
		err = s.admitResume(r, req.transport == transportPoll) // before the history read
	}
	if err != nil {
		setRetryAfter(w, err)
		writeError(w, err)
		return
	}
	if req.cursor.Len() > 0 {
		s.metrics.Resumed(req.transport.metric())
	}
	switch req.transport {
	case transportWS:
		s.serveWS(w, r, req)
	case transportSSE:
		s.serveSSE(w, r, req)
	default:
		s.servePoll(w, r, req)
	}
}
