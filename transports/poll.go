package transports

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
)

// servePoll answers a long-poll: at once when messages after the cursor
// are retained (or history was lost: "gap":true); otherwise it holds the
// request until a message arrives or timeout= passes. With linger= it
// keeps collecting for that long once it has a first message, so a client
// wakes once for a burst.
//
//	{"messages":[…],"cursor":"…","gap":false}
//
// The next poll sends cursor as since=. Without since= the request starts
// at the channels' current position (only later messages).
func (s *Server) servePoll(w http.ResponseWriter, r *http.Request, req subscribeRequest) {
	timeout, err := queryDuration(r, "timeout", s.cfg.PollTimeout, 0, s.cfg.PollTimeoutMax)
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
	sess, err := s.hub.NewSession()
	if err != nil {
		writeError(w, err)
		return
	}
	defer sess.Release()
	ans, err := s.poll(r.Context(), sess, req, timeout, min(linger, timeout), limit)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSONBytes(w, http.StatusOK, ans.appendJSON(nil))
}

// pollAnswer is the body of a long-poll response.
type pollAnswer struct {
	frames     []*edge.Frame
	cursor     resume.Cursor
	gap        bool
	disconnect *edge.Disconnect
	retry      time.Duration
}

func (s *Server) poll(ctx context.Context, sess *edge.Session, req subscribeRequest, timeout, linger time.Duration, limit int) (pollAnswer, error) {
	ans := pollAnswer{cursor: req.cursor}
	// Subscribe before reading history, so that whatever history misses
	// is buffered in the session.
	for _, ch := range req.channels {
		if err := sess.Subscribe(ctx, ch); err != nil {
			return ans, err
		}
	}
	for _, ch := range req.channels {
		if _, ok := ans.cursor.Get(ch); ok {
			continue
		}
		pos, err := s.broker.Last(ctx, ch)
		if err != nil {
			return ans, err
		}
		ans.cursor.Set(ch, pos)
	}
	if err := s.pollHistory(ctx, &ans, req.channels, limit, func(ch string) bool {
		_, ok := req.cursor.Get(ch)
		return ok
	}); err != nil || ans.gap {
		return ans, err
	}
	have := len(ans.frames) > 0
	if have && (linger == 0 || len(ans.frames) == limit) {
		return ans, nil
	}
	ans.disconnect = holdPoll(ctx, sess, req.channels, &ans.cursor, timeout, linger, have)
	if ans.disconnect != nil {
		ans.retry = s.reconnectDelay(*ans.disconnect)
	}
	var overflowed []string
	for _, ch := range req.channels {
		pos, _ := ans.cursor.Get(ch)
		frames, lost := sess.Buffered(ch, pos)
		if lost {
			overflowed = append(overflowed, ch)
			continue
		}
		frames = frames[:min(len(frames), limit-len(ans.frames))]
		if n := len(frames); n > 0 {
			ans.frames = append(ans.frames, frames...)
			ans.cursor.Set(ch, frames[n-1].ID)
		}
	}
	// A channel whose buffer overflowed is read from history instead.
	err := s.pollHistory(ctx, &ans, overflowed, limit, func(string) bool { return true })
	return ans, err
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
		ans.gap = ans.gap || page.Gap
		for _, m := range page.Messages {
			ans.frames = append(ans.frames, edge.NewFrame(m))
		}
		if n := len(page.Messages); n > 0 {
			ans.cursor.Set(ch, page.Messages[n-1].ID)
		}
	}
	return nil
}

// holdPoll waits until a message after the cursor is buffered and then
// lingers (at once when the answer already has messages), until the
// timeout passes, the client leaves or the session closes.
func holdPoll(ctx context.Context, sess *edge.Session, channels []string, cursor *resume.Cursor, timeout, linger time.Duration, have bool) *edge.Disconnect {
	wait := timeout
	if have {
		wait = linger
	}
	hold := time.NewTimer(wait)
	defer hold.Stop()
	lingering := have
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hold.C:
			return nil
		case <-sess.Notify():
			if d, closed := sess.Closed(); closed {
				return &d
			}
			if lingering || !anyBuffered(sess, channels, cursor) {
				continue
			}
			if linger == 0 {
				return nil
			}
			lingering = true
			hold.Reset(linger)
		}
	}
}

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
	b = strconv.AppendBool(b, a.gap)
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
