package edge

import (
	"context"
	"fmt"
	"sync"
)

// catchUpPage is how many history messages Join reads at a time.
const catchUpPage = 500

// maxCatchUpRounds bounds how often Join re-reads history because live
// traffic overflowed its buffer; a client that cannot catch up after that
// is a slow consumer.
const maxCatchUpRounds = 50

// Session is one client connection's subscriptions and its bounded queue of
// outgoing frames. The hub pushes frames; the connection's writer takes
// them. A session that gets more than Config.QueueBytes behind is closed
// with DisconnectSlow: it never slows the hub or other sessions.
//
// A channel is first joined in buffering mode: live frames wait in a
// per-channel buffer (bounded the same way) while the caller reads history,
// then the buffer is merged at the exact seam (by id, without gap or
// duplicate) and the channel goes live.
//
// Methods are safe for concurrent use. The creator must call Release.
type Session struct {
	hub      *Hub
	maxBytes int
	notify   chan struct{} // has a value when frames were queued or the session closed
	done     chan struct{} // closed by Close

	mu sync.Mutex
	// mu guards the fields below.
	queue    []*Frame
	queued   int                    // bytes in queue
	channels map[string]*joinBuffer // subscribed channels; nil value = live
	closed   *Disconnect
	released bool
}

// joinBuffer holds a channel's live frames while it catches up.
type joinBuffer struct {
	frames     []*Frame
	bytes      int
	overflowed bool // frames were dropped; read history again
}

// Notify returns a channel that has a value when frames were queued,
// buffered or the session closed. One value may stand for many events.
func (s *Session) Notify() <-chan struct{} { return s.notify }

// Done returns a channel closed when the session closes.
func (s *Session) Done() <-chan struct{} { return s.done }

// Closed returns why the session closed, or false while it is open.
func (s *Session) Closed() (Disconnect, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed == nil {
		return Disconnect{}, false
	}
	return *s.closed, true
}

// Close closes the session with d; the first reason wins. Queued frames are
// dropped and the writer should end the connection, telling the client d.
func (s *Session) Close(d Disconnect) {
	s.mu.Lock()
	s.closeLocked(d)
	s.mu.Unlock()
}

func (s *Session) closeLocked(d Disconnect) {
	if s.closed != nil {
		return
	}
	s.closed = &d
	if d == DisconnectSlow {
		s.hub.slow.Add(1)
	}
	s.queue, s.queued = nil, 0
	for ch, jb := range s.channels {
		if jb != nil {
			s.channels[ch] = &joinBuffer{}
		}
	}
	close(s.done)
	s.signal()
}

func (s *Session) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Release unsubscribes every channel and forgets the session. It is safe
// to call more than once.
func (s *Session) Release() {
	s.mu.Lock()
	if s.released {
		s.mu.Unlock()
		return
	}
	s.released = true
	chans := make([]string, 0, len(s.channels))
	for ch := range s.channels {
		chans = append(chans, ch)
	}
	s.channels = map[string]*joinBuffer{}
	s.closeLocked(DisconnectShutdown)
	s.mu.Unlock()
	for _, ch := range chans {
		s.hub.remove(ch, s)
	}
	s.hub.release(s)
}

// push is called by the hub for every live frame of a subscribed channel.
func (s *Session) push(f *Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed != nil {
		return
	}
	jb, ok := s.channels[f.Channel]
	switch {
	case !ok:
		return
	case jb != nil:
		if jb.overflowed {
			return
		}
		if jb.bytes+f.Size() > s.maxBytes {
			jb.frames, jb.bytes, jb.overflowed = nil, 0, true
			return
		}
		jb.frames = append(jb.frames, f)
		jb.bytes += f.Size()
	default:
		if !s.enqueueLocked(f) {
			return
		}
	}
	s.signal()
}

// enqueueLocked queues f or, over budget, closes the session as a slow
// consumer. It reports whether f was queued.
func (s *Session) enqueueLocked(f *Frame) bool {
	if s.queued+f.Size() > s.maxBytes {
		s.closeLocked(DisconnectSlow)
		return false
	}
	s.queue = append(s.queue, f)
	s.queued += f.Size()
	return true
}

// Take moves every queued frame out of the session, appending them to buf
// (pass the previous result's buf[:0] to reuse it).
func (s *Session) Take(buf []*Frame) []*Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf = append(buf, s.queue...)
	clear(s.queue)
	s.queue, s.queued = s.queue[:0], 0
	return buf
}

// Subscribe adds channel to the session in buffering mode: its live frames
// are kept aside until GoLive. It returns once the broker relays the
// channel, and fails when the channel is already subscribed, the session
// has Config.MaxChannels channels, or the broker cannot relay it.
func (s *Session) Subscribe(ctx context.Context, channel string) error {
	s.mu.Lock()
	if s.closed != nil {
		s.mu.Unlock()
		return ErrSessionClosed
	}
	if _, ok := s.channels[channel]; ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: already subscribed to %q", ErrBadRequest, channel)
	}
	if len(s.channels) >= s.hub.cfg.MaxChannels {
		s.mu.Unlock()
		return fmt.Errorf("%w: a connection may subscribe to at most %d channels", ErrTooManyChannels, s.hub.cfg.MaxChannels)
	}
	s.channels[channel] = &joinBuffer{}
	s.mu.Unlock()
	if err := s.hub.add(ctx, channel, s); err != nil {
		s.mu.Lock()
		delete(s.channels, channel)
		s.mu.Unlock()
		return err
	}
	return nil
}

// Unsubscribe removes channel from the session and drops its queued frames.
func (s *Session) Unsubscribe(channel string) error {
	s.mu.Lock()
	if _, ok := s.channels[channel]; !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: not subscribed to %q", ErrBadRequest, channel)
	}
	delete(s.channels, channel)
	kept := s.queue[:0]
	s.queued = 0
	for _, f := range s.queue {
		if f.Channel != channel {
			kept = append(kept, f)
			s.queued += f.Size()
		}
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	s.mu.Unlock()
	s.hub.remove(channel, s)
	return nil
}

// Buffered returns the frames of a buffering channel with ids after pos and
// whether frames were dropped for lack of room (then history has them).
func (s *Session) Buffered(channel string, after ID) (frames []*Frame, overflowed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	jb := s.channels[channel]
	if jb == nil {
		return nil, false
	}
	for _, f := range jb.frames {
		if after.Less(f.ID) {
			frames = append(frames, f)
		}
	}
	return frames, jb.overflowed
}

// GoLive ends buffering of channel: the buffered frames with ids after pos
// are queued, and later frames go straight to the queue. When the buffer
// overflowed it is emptied instead, the channel keeps buffering, and GoLive
// returns false: the caller reads history after pos again and retries.
func (s *Session) GoLive(channel string, pos ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	jb, ok := s.channels[channel]
	if !ok || jb == nil {
		return true
	}
	if jb.overflowed {
		s.channels[channel] = &joinBuffer{}
		return false
	}
	s.channels[channel] = nil
	for _, f := range jb.frames {
		if pos.Less(f.ID) && !s.enqueueLocked(f) {
			break
		}
	}
	s.signal()
	return true
}

// Join subscribes the session to channel and brings it up to date. With a
// cursor (since != nil) it passes every retained message after it to emit,
// in pages, oldest first (a page with Gap set first when some are no longer
// retained); without one it starts at the channel's current position. When
// Join returns, the channel is live: its next message is queued right after
// the returned position, with no gap and no duplicate. emit runs on the
// caller's goroutine, typically the connection's writer.
func (s *Session) Join(ctx context.Context, channel string, since *ID, emit func(Page) error) (ID, error) {
	if err := s.Subscribe(ctx, channel); err != nil {
		return ID{}, err
	}
	pos, err := s.catchUp(ctx, channel, since, emit)
	if _, closed := s.Closed(); closed && err == nil {
		err = ErrSessionClosed
	}
	if err != nil {
		s.Unsubscribe(channel)
		return ID{}, err
	}
	return pos, nil
}

func (s *Session) catchUp(ctx context.Context, channel string, since *ID, emit func(Page) error) (ID, error) {
	broker := s.hub.broker
	var pos ID
	if since == nil {
		last, err := broker.Last(ctx, channel)
		if err != nil {
			return ID{}, err
		}
		if s.GoLive(channel, last) {
			return last, nil
		}
		pos = last
	} else {
		pos = *since
	}
	for round := 0; round < maxCatchUpRounds; {
		page, err := broker.History(ctx, channel, pos, catchUpPage)
		if err != nil {
			return ID{}, err
		}
		if len(page.Messages) > 0 || page.Gap {
			if err := emit(page); err != nil {
				return ID{}, err
			}
		}
		if n := len(page.Messages); n > 0 {
			pos = page.Messages[n-1].ID
		}
		if len(page.Messages) == catchUpPage {
			continue
		}
		if s.GoLive(channel, pos) {
			return pos, nil
		}
		round++
	}
	s.Close(DisconnectSlow)
	return ID{}, ErrSessionClosed
}
