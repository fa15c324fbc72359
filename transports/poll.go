package transports

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports/internal/hijack"
	"github.com/edgeworks/edge/transports/metrics"
)

// servePoll answers a long-poll: at once when messages after the cursor
// are retained (or history was lost: "gap":true); otherwise it holds the
// request until a message arrives or timeout= passes. With linger= it
// keeps collecting for that long once it has a first message, so a client
// wakes once for a burst. With conflate= it collects for the conflation
// window (or linger=, if longer; at most timeout=) and answers only the
// newest message of each conflation key of each channel; the cursor is
// the newest message, always answered as the newest of its key.
//
//	{"messages":[…],"cursor":"…","gap":false}
//
// With "gap":true, "gap_channels" names the channels whose history after
// the cursor was lost. With presence=1, "presence" lists the joins and
// leaves heard while the request was held (only then: they are not
// history), and one answers the request as a message does. The next poll
// sends cursor as since=. Without since= the request starts at the
// channels' current position (only later messages).
//
// A waiting HTTP/1 request is parked (see pollWaiter): it holds no
// goroutine and none of net/http's buffers. Over HTTP/2 the handler
// goroutine waits instead (hold), on the same timer and wakes.
//
// A compressed answer (see Config.Compress) is gzip-encoded whole, with
// no state kept between polls; errors are answered plain.
func (s *Server) servePoll(w http.ResponseWriter, r *http.Request, req subscribeRequest) {
	timeout, err := queryDuration(r, "timeout", s.cfg.PollTimeout, 0, s.cfg.PollTimeoutMax)
	if err != nil {
		writeError(w, err)
		return
	}
	compress, err := s.gzipResponse(r)
	if err != nil {
		writeError(w, err)
		return
	}
	linger, err := queryDuration(r, "linger", 0, 0, s.cfg.PollLingerMax)
	if err != nil {
		writeError(w, err)
		return
	}
	limit, err := queryInt(r, "limit", 100, 1, maxPageMessages)
	if err != nil {
		writeError(w, err)
		return
	}
	token := queryValue(r.URL.RawQuery, "member")
	if (token != "" || r.URL.Query().Has("member")) && !edge.ValidMemberToken(token) {
		writeError(w, fmt.Errorf("%w: member= is the token of an earlier answer's \"member\" (%d lowercase hex digits)", edge.ErrBadRequest, edge.MemberTokenLen))
		return
	}
	linger = min(max(linger, req.conflate), timeout)
	sess, err := s.newSession(metrics.Poll)
	if err != nil {
		writeError(w, err)
		return
	}
	// The session is no member: a long-poll is not connected between its
	// requests. The hub keeps the poll member of the token instead, from
	// poll to poll (pollMember).
	s.presenceSession(sess, &req, false)
	// A conflating poll gets whole messages (see edge.Session.SetConflate).
	sess.SetDelta(req.delta && req.conflate == 0)
	p := &pollWaiter{s: s, sess: sess, channels: req.channels, linger: linger, limit: limit, conflate: req.conflate > 0, gzip: compress}
	p.ans.cursor = req.cursor
	err = p.start(r.Context(), req)
	if err == nil {
		p.pollMember(token, &req)
	}
	// Counted once its position is fixed: a poll that the count shows
	// gets every message published from then on.
	s.metrics.Connected(metrics.Poll, 1)
	if err != nil || p.answered() {
		p.respond(w, err)
		return
	}
	wait := timeout
	if len(p.ans.frames) > 0 {
		wait, p.lingering = linger, true
	}
	if s.park(w, r, p, wait) {
		return
	}
	p.hold(r.Context(), wait)
	p.respond(w, p.finish(r.Context()))
}

// pollAnswer is the body of a long-poll response.
type pollAnswer struct {
	member     string // the member token to send as member= next; "": no presence channel
	frames     []*edge.Frame
	presence   []*edge.Frame // joins and leaves heard while the request was held
	cursor     resume.Cursor
	gaps       []string // channels whose history after the cursor was lost
	disconnect *edge.Disconnect
	retry      time.Duration
}

// pollWaiter is one long-poll request. It waits without a goroutine of
// its own (see wait): the session wakes its turn when frames arrive, a
// timer when the hold or the linger ends. Parked, the turn then answers
// on the hijacked connection and gives it back to net/http for the
// client's next request; held, it wakes the handler, which answers.
type pollWaiter struct {
	s         *Server
	sess      *edge.Session
	channels  []string
	linger    time.Duration
	limit     int
	conflate  bool // answer the newest message of each key only (conflate=)
	ans       pollAnswer
	lingering bool   // a message arrived; answer when the timer fires
	gzip      bool   // the answer is gzip-encoded
	unhold    func() // ends the poll's hold on its presence member; nil: none

	// Set when waiting.
	turn    writeTurn
	timer   *time.Timer
	expired atomic.Bool
	done    func() // called holding the turn once the wait is over

	// Set when parked.
	conn      net.Conn
	head      []byte // the handler's response header lines (CORS)
	pending   []byte // bytes of the client's next request, read early
	keepAlive bool
}

// start subscribes, sets the position of channels without a cursor to
// their end, and reads history after the cursor.
func (p *pollWaiter) start(ctx context.Context, req subscribeRequest) error {
	// Subscribe before reading history, so that whatever history misses
	// is buffered in the session.
	for _, ch := range p.channels {
		if err := p.sess.Subscribe(ctx, ch); err != nil {
			return err
		}
		// A poll trusts its since=: its client holds every message up to
		// it (a client that does not recovers, polling without delta=).
		if id, ok := req.cursor.Get(ch); ok {
			p.sess.TrustDelta(ch, id)
		}
	}
	for _, ch := range p.channels {
		if _, ok := p.ans.cursor.Get(ch); ok {
			continue
		}
		pos, err := p.s.broker.Last(ctx, ch)
		if err != nil {
			return err
		}
		p.ans.cursor.Set(ch, pos)
	}
	return p.s.pollHistory(ctx, &p.ans, p.channels, p.limit, func(ch string) bool {
		_, ok := req.cursor.Get(ch)
		return ok
	})
}

// pollMember makes the poll's client a presence member of the channels
// that keep presence, under token, which the answer carries back for the
// client's next poll; see edge.Hub.PollMember. A poll without a token is
// no member: its answer gives it a fresh one. Only a client that sends
// it back is a member, so a client that does not (one written before
// long-polls were members) makes no member at every poll, each of whose
// joins would wake every poll that hears presence, its own next one too.
func (p *pollWaiter) pollMember(token string, req *subscribeRequest) {
	if !p.s.hub.PresenceEnabled() || !slices.ContainsFunc(p.channels, p.s.hub.KeepsPresence) {
		return
	}
	if token == "" {
		p.ans.member = edge.NewMemberToken()
		return
	}
	var sub string
	if req.claims != nil {
		sub = req.claims.Subject
	}
	p.ans.member = token
	m := edge.Member{Conn: edge.PollConn(token, sub), Sub: sub, Info: req.info}
	p.unhold, _ = p.s.hub.PollMember(m, p.channels, p.s.cfg.PollMemberGrace)
}

// answered reports whether the answer is ready without waiting.
func (p *pollWaiter) answered() bool {
	n := len(p.ans.frames)
	return len(p.ans.gaps) > 0 || (n > 0 && (p.linger == 0 || n == p.limit))
}

// finish adds what the session buffered while the request waited, and
// reads channels whose buffer overflowed from history.
func (p *pollWaiter) finish(ctx context.Context) error {
	if p.ans.disconnect != nil {
		p.ans.retry = p.s.reconnectDelay(*p.ans.disconnect)
	}
	p.ans.presence = p.sess.Take(p.ans.presence)
	var overflowed []string
	for _, ch := range p.channels {
		pos, _ := p.ans.cursor.Get(ch)
		frames, lost := p.sess.Buffered(ch, pos)
		if lost {
			overflowed = append(overflowed, ch)
			continue
		}
		frames = frames[:min(len(frames), p.limit-len(p.ans.frames))]
		if n := len(frames); n > 0 {
			p.ans.frames = append(p.ans.frames, frames...)
			p.ans.cursor.Set(ch, frames[n-1].ID)
		}
	}
	return p.s.pollHistory(ctx, &p.ans, overflowed, p.limit, func(string) bool { return true })
}

// conflateAnswer keeps the newest message of each key of each channel,
// when the poll conflates. The cursor, at the newest message of each
// channel, stays: that message is the newest of its key.
func (p *pollWaiter) conflateAnswer() {
	if p.conflate {
		p.ans.frames = edge.ConflateFrames(p.ans.frames)
	}
}

// respond releases the session and answers through net/http.
func (p *pollWaiter) respond(w http.ResponseWriter, err error) {
	p.ans.presence = p.sess.Take(p.ans.presence)
	if err == nil {
		p.conflateAnswer()
		p.deltas()
	}
	p.release()
	if err != nil {
		writeError(w, err)
		return
	}
	if p.gzip {
		setGzipHeader(w.Header())
		writeEncodedJSON(w, http.StatusOK, appendGzip(nil, append(p.ans.appendJSON(nil), '\n')))
	} else {
		writeJSONBytes(w, http.StatusOK, p.ans.appendJSON(nil))
	}
	p.delivered()
}

// deltas replaces, for a delta poll, each message of the answer whose
// base the client holds by its patch (see edge.Session.Out).
func (p *pollWaiter) deltas() {
	for i, f := range p.ans.frames {
		p.ans.frames[i] = p.sess.Out(f)
	}
}

// release releases the session, which ends the request's connection
// count, and starts its presence member's grace.
func (p *pollWaiter) release() {
	if p.unhold != nil {
		p.unhold()
	}
	p.sess.Release()
	p.s.metrics.Connected(metrics.Poll, -1)
}

// delivered counts the answer's messages, and samples the latency of its
// newest: a long-poll's older messages may have waited for the poll.
func (p *pollWaiter) delivered() {
	if n := len(p.ans.frames); n > 0 {
		p.s.metrics.Delivered(metrics.Poll, n)
		p.s.metrics.Latency(metrics.Poll, p.ans.frames[n-1].ID, time.Now())
	}
}

// park hijacks the request's connection and leaves the waiting to p,
// which answers on it. It reports false, having changed nothing, when the
// request cannot be parked: HTTP/2, a request with a body, or a handler
// not run by Server.Run. A body would be left on the connection, whose
// next request net/http reads once the answer gives it back: the body
// would be served as a request (one smuggled past a proxy that reuses its
// connections).
func (s *Server) park(w http.ResponseWriter, r *http.Request, p *pollWaiter, wait time.Duration) bool {
	if r.ProtoMajor != 1 || r.ContentLength != 0 || s.recycler.Load() == nil {
		return false
	}
	s.hijacked.Add(1) // before the hijack, which Run's http.Server.Shutdown stops waiting for
	conn, head, pending, err := hijack.Take(w)
	if err != nil {
		s.hijacked.Done()
		return false
	}
	p.conn, p.head, p.pending = conn, head, pending
	p.keepAlive = r.ProtoMinor >= 1 && !r.Close
	p.wait(wait, p.answer)
	return true
}

// hold waits in the handler, for a request that cannot be parked, until
// p's wait is over or the client leaves; the handler then answers.
func (p *pollWaiter) hold(ctx context.Context, wait time.Duration) {
	over := make(chan struct{})
	p.wait(wait, func() { close(over) })
	select {
	case <-over:
	case <-ctx.Done():
		if p.turn.Lock() { // false: the wait is over
			p.stop()
			p.turn.Unlock()
		}
	}
}

// wait starts waiting for wait (the hold, or the linger when the answer
// already has messages): the session wakes p's turn when frames arrive, a
// timer when the time is up; the turn calls done once the wait is over.
func (p *pollWaiter) wait(wait time.Duration, done func()) {
	p.done = done
	p.turn.write = p.check
	p.turn.mu.Lock()
	p.sess.SetWake(p)
	p.timer = time.AfterFunc(wait, func() {
		p.expired.Store(true)
		p.turn.KickHere()
	})
	p.turn.mu.Unlock()
	p.Wake() // frames may have arrived before the wake was set
}

// check is a waiting request's turn: the wait is over when the session
// closed, the hold or linger ended, or a message arrived (with linger=,
// it starts lingering then instead).
func (p *pollWaiter) check() {
	if d, closed := p.sess.Closed(); closed {
		p.ans.disconnect = &d
	} else if !p.expired.Load() {
		if p.lingering || !anyBuffered(p.sess, p.channels, &p.ans.cursor) && p.sess.Queued() == 0 {
			return
		}
		if p.linger > 0 {
			p.lingering = true
			p.timer.Reset(p.linger)
			return
		}
	}
	p.stop()
	p.done()
}

// stop ends the wait: later wakes and the timer do nothing. The caller
// holds the turn.
func (p *pollWaiter) stop() {
	p.turn.Close()
	p.timer.Stop()
	p.sess.SetWake(nil)
}

// answer writes the answer on the hijacked connection and gives the
// connection back to net/http, or closes it. The caller holds the turn
// and stopped the wait.
func (p *pollWaiter) answer() {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	status, body := http.StatusOK, []byte(nil)
	if err := p.finish(ctx); err != nil {
		var eb errorBody
		eb, status = newErrorBody(err)
		body = marshalJSON(eb)
	} else {
		p.conflateAnswer()
		p.deltas()
		body = p.ans.appendJSON(nil)
	}
	p.release()
	keepAlive := p.keepAlive && !p.s.hub.ShuttingDown()
	var b []byte
	if p.gzip && status == http.StatusOK {
		z := appendGzip(nil, append(body, '\n'))
		b = hijack.AppendEncodedJSON(make([]byte, 0, 256+len(p.head)+len(z)), status, p.head, "gzip", z, keepAlive)
	} else {
		b = hijack.AppendJSON(make([]byte, 0, 256+len(p.head)+len(body)), status, p.head, body, keepAlive)
	}
	p.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := p.conn.Write(b)
	if err == nil && status == http.StatusOK {
		p.delivered()
	}
	if err != nil || !keepAlive {
		p.conn.Close()
	} else {
		p.conn.SetWriteDeadline(time.Time{})
		p.s.recycler.Load().GiveBack(p.conn, p.pending)
	}
	p.s.hijacked.Done()
}

// pollHistory adds the retained messages after the cursor of each channel
// that read selects, up to limit messages in all.
func (s *Server) pollHistory(ctx context.Context, ans *pollAnswer, channels []string, limit int, read func(string) bool) error {
	for _, ch := range channels {
		if len(ans.frames) == limit || !read(ch) {
			continue
		}
		pos, _ := ans.cursor.Get(ch)
		page, err := s.broker.History(ctx, ch, pos, limit-len(ans.frames))
		if err != nil {
			return err
		}
		if page.Gap {
			s.metrics.Gap()
			ans.gaps = append(ans.gaps, ch)
		}
		if page.Ahead {
			ans.cursor.Set(ch, page.Last)
		}
		for _, m := range page.Messages {
			// The hub's own frame when it kept it as a delta base: a delta
			// poll gets its patch (see edge.Hub.Frame).
			ans.frames = append(ans.frames, s.hub.Frame(m))
		}
		if n := len(page.Messages); n > 0 {
			ans.cursor.Set(ch, page.Messages[n-1].ID)
		}
	}
	return nil
}

// anyBuffered reports whether sess buffered a frame after the cursor, or
// lost some, in any of channels.
func anyBuffered(sess *edge.Session, channels []string, cursor *resume.Cursor) bool {
	for _, ch := range channels {
		pos, _ := cursor.Get(ch)
		if frames, lost := sess.Buffered(ch, pos); len(frames) > 0 || lost {
			return true
		}
	}
	return false
}

func (a *pollAnswer) appendJSON(b []byte) []byte {
	b = append(b, `{"messages":[`...)
	for i, f := range a.frames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, frameJSON(f)...)
	}
	b = append(b, `],"cursor":"`...)
	b = a.cursor.AppendTo(b)
	b = append(b, `","gap":`...)
	b = strconv.AppendBool(b, len(a.gaps) > 0)
	if len(a.gaps) > 0 {
		b = append(b, `,"gap_channels":[`...)
		for i, ch := range a.gaps {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, ch)
		}
		b = append(b, ']')
	}
	if len(a.presence) > 0 {
		b = append(b, `,"presence":`...)
		b = appendFrameArray(b, a.presence)
	}
	if a.member != "" {
		b = append(b, `,"member":"`...)
		b = append(b, a.member...)
		b = append(b, '"')
	}
	if d := a.disconnect; d != nil {
		b = append(b, `,"disconnect":{"code":`...)
		b = strconv.AppendInt(b, int64(d.Code), 10)
		b = append(b, `,"reason":"`...)
		b = append(b, d.Reason...)
		b = append(b, `","reconnect":`...)
		b = strconv.AppendBool(b, d.Reconnect())
		b = append(b, `,"retry_ms":`...)
		b = strconv.AppendInt(b, a.retry.Milliseconds(), 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

// Wake has the waiter's turn check, on a writer.
func (p *pollWaiter) Wake() { p.turn.Kick(p.s.writers) }

func (p *pollWaiter) kickTurn() *writeTurn { return &p.turn }
