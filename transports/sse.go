package transports

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
)

// writeTimeout bounds every write to a client; a client that does not take
// bytes for that long is gone or hopelessly slow.
const writeTimeout = 10 * time.Second

// maxPadding bounds the padding= a client may ask for.
const maxPadding = 8 << 10

// bufPool holds the write buffers of streaming connections, so an idle
// connection holds none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// sseStream is one SSE connection: the handler goroutine is its only writer.
type sseStream struct {
	s      *Server
	w      http.ResponseWriter
	rc     *http.ResponseController
	multi  bool          // several channels: data is the JSON object, id the composite cursor
	cursor resume.Cursor // position of what was written, per channel
	buf    []byte
}

// serveSSE streams to EventSource and other SSE clients.
//
// The stream starts with "retry:" (and padding= comment bytes for proxies
// that buffer), then history after the cursor, then an id-only event that
// sets the client's Last-Event-ID to the full position even before the first
// message, then live events and ": hb" heartbeat comments. It ends with an
// "event: disconnect" when the edge closes it.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request, req subscribeRequest) {
	padding, err := queryInt(r, "padding", 0, 0, maxPadding)
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

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.ProtoMajor == 1 {
		h.Set("Connection", "keep-alive")
	}
	w.WriteHeader(http.StatusOK)

	st := &sseStream{s: s, w: w, rc: http.NewResponseController(w), multi: len(req.channels) > 1}
	st.take()
	st.buf = appendSSERetry(st.buf, s.cfg.SSERetry.Milliseconds())
	if padding > 0 {
		st.buf = append(st.buf, ':')
		for range padding {
			st.buf = append(st.buf, ' ')
		}
		st.buf = append(st.buf, '\n', '\n')
	}
	for _, ch := range req.channels {
		pos, err := sess.Join(r.Context(), ch, req.since(ch), func(p edge.Page) error {
			return st.writePage(ch, p)
		})
		if err != nil {
			d, closed := sess.Closed()
			if !closed {
				s.log.Warn("sse join failed", "err", err)
				d = edge.DisconnectServerError
			}
			st.disconnect(d)
			return
		}
		st.cursor.Set(ch, pos)
	}
	st.buf = append(st.buf, "id: "...)
	st.buf = st.cursor.AppendTo(st.buf)
	st.buf = append(st.buf, '\n', '\n')
	if st.flush() != nil {
		return
	}

	heartbeat := time.NewTicker(req.heartbeat)
	defer heartbeat.Stop()
	var frames []*edge.Frame
	for {
		select {
		case <-r.Context().Done():
			return
		case <-heartbeat.C:
			st.take()
			st.buf = append(st.buf, ": hb\n\n"...)
		case <-sess.Notify():
			frames = sess.Take(frames[:0])
			if len(frames) > 0 {
				st.take()
				for _, f := range frames {
					st.appendFrame(f)
				}
				clear(frames)
			}
			if d, closed := sess.Closed(); closed {
				st.disconnect(d)
				return
			}
		}
		if st.flush() != nil {
			return
		}
	}
}

// take borrows a write buffer from the pool if the stream holds none.
func (st *sseStream) take() {
	if st.buf == nil {
		st.buf = (*bufPool.Get().(*[]byte))[:0]
	}
}

// flush writes the buffer, flushes it to the client and returns the buffer
// to the pool.
func (st *sseStream) flush() error {
	if st.buf == nil {
		return nil
	}
	st.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := st.w.Write(st.buf)
	if err == nil {
		err = st.rc.Flush()
	}
	b := st.buf[:0]
	st.buf = nil
	if cap(b) <= 64<<10 {
		bufPool.Put(&b)
	}
	return err
}

func (st *sseStream) appendFrame(f *edge.Frame) {
	st.cursor.Set(f.Channel, f.ID)
	if !st.multi {
		st.buf = append(st.buf, frameSSE(f)...)
		return
	}
	st.buf = append(st.buf, "id: "...)
	st.buf = st.cursor.AppendTo(st.buf)
	st.buf = append(st.buf, '\n')
	st.buf = append(st.buf, frameSSEMulti(f)...)
}

// writePage writes a page of history for channel, after an "event: gap"
// when the page says messages were lost.
func (st *sseStream) writePage(channel string, p edge.Page) error {
	st.take()
	if p.Gap {
		st.buf = append(st.buf, "event: gap\ndata: {\"channel\":"...)
		st.buf = appendJSONString(st.buf, channel)
		st.buf = append(st.buf, "}\n\n"...)
	}
	for _, m := range p.Messages {
		st.appendFrame(edge.NewFrame(m))
	}
	return st.flush()
}

// disconnect tells the client why the stream ends and when to come back.
func (st *sseStream) disconnect(d edge.Disconnect) {
	st.take()
	st.buf = appendSSERetry(st.buf, st.s.reconnectDelay(d).Milliseconds())
	st.buf = append(st.buf, "event: disconnect\ndata: {\"code\":"...)
	st.buf = strconv.AppendInt(st.buf, int64(d.Code), 10)
	st.buf = append(st.buf, `,"reason":"`...)
	st.buf = append(st.buf, d.Reason...)
	st.buf = append(st.buf, `","reconnect":`...)
	st.buf = strconv.AppendBool(st.buf, d.Reconnect())
	st.buf = append(st.buf, "}\n\n"...)
	st.flush()
}
