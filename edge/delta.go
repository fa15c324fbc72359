package edge

import (
	"container/list"
	"sync"
	"time"

	"github.com/centrifugal/fdelta"
)

// Delta compression (delta=fossil): a subscriber that asks for it gets,
// instead of a message's payload, a Fossil delta (fossil-scm.org's
// delta_format) that turns the previous message of the same channel and
// conflation key (Message.Key) into it, when its client holds that
// previous message and the delta is smaller than the payload.
//
// The hub keeps, per channel and only while the node has a delta
// subscriber to it (and DeltaLinger after the last one left), the
// previous message of each key (deltaChannel), and its 64 latest frames
// for long-polls that read them from history (Hub.Frame). A
// new message of a key with a previous one carries it as its base; its
// patch is computed once, by the first subscriber that needs it, and its
// encodings are shared by all (Frame.Delta). A session sends the patch
// only when its client holds the base: the last message of the key it
// queued was the base (subscription.out).
const (
	// DeltaResync is how often a key's message carries no base: every
	// DeltaResync-th message of a key is sent in full to every delta
	// subscriber, so that a client that holds a wrong base for whatever
	// reason is put right within that many messages.
	DeltaResync = 50
	// DeltaMaxKeys bounds the keys a channel keeps a previous message of:
	// beyond it the stalest key is forgotten, and its next message is
	// sent in full.
	DeltaMaxKeys = 1024
	// DeltaMaxBytes bounds the payload bytes a channel keeps as bases, in
	// the same way.
	DeltaMaxBytes = 4 << 20
	// DeltaMaxPayload is the largest payload that is sent as a delta: a
	// larger one is always sent in full, which bounds the cost of making a
	// delta (it grows with the base's size).
	DeltaMaxPayload = 64 << 10
	// DeltaLinger is how long a channel keeps its delta state, still
	// relayed, after its last delta subscriber left: a long-poll is a new
	// subscriber at every request, and finds the previous messages it
	// needs as bases when it polls again within it.
	DeltaLinger = 30 * time.Second
)

// frameDelta is a message's base: the previous message of its key, which
// subscribers whose clients hold it may get a patch against instead.
type frameDelta struct {
	base ID
	data []byte // the base's payload, never modified

	once sync.Once
	view *Frame // the frame as a patch; nil when the patch is not smaller
}

// deltaChannel is the previous message of each key of one channel. It is
// safe for concurrent use.
type deltaChannel struct {
	mu sync.Mutex
	// mu guards the fields below.
	keys  map[string]*list.Element // of *deltaPrev
	order list.List                // of *deltaPrev, least recently updated first
	bytes int                      // the payload bytes kept
	// recent are the channel's latest frames, for long-polls that read
	// them from history (Hub.Frame); next is where the next one goes.
	recent [deltaRecent]*Frame
	next   int
}

// deltaRecent is how many of a channel's latest frames its delta state
// keeps for long-polls.
const deltaRecent = 64

// deltaPrev is the previous message of one key, as the hub relayed it.
type deltaPrev struct {
	key   string
	frame *Frame
	n     int // messages of the key since the last one without a base
}

func newDeltaChannel() *deltaChannel {
	return &deltaChannel{keys: make(map[string]*list.Element)}
}

// record records f as the previous message of its key and gives it its
// base, unless it has none (the key's first message, every DeltaResync-th
// one, one too large, or one not after the previous). The broker hands a
// channel's messages in id order (see Broker), so the base is the message
// right before f in its key; the lock keeps the state whole even if it
// did not.
func (dc *deltaChannel) record(f *Frame) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	e := dc.keys[f.Key]
	dc.recent[dc.next] = f
	dc.next = (dc.next + 1) % deltaRecent
	if len(f.Data) > DeltaMaxPayload {
		if e != nil {
			dc.dropLocked(e)
		}
		return
	}
	if e == nil {
		dc.keys[f.Key] = dc.order.PushBack(&deltaPrev{key: f.Key, frame: f})
		dc.bytes += len(f.Data)
		dc.evictLocked()
		return
	}
	p := e.Value.(*deltaPrev)
	prev := p.frame
	if p.n++; p.n < DeltaResync && prev.ID.Less(f.ID) {
		f.delta = &frameDelta{base: prev.ID, data: prev.Data}
	} else {
		p.n = 0
	}
	dc.bytes += len(f.Data) - len(prev.Data)
	p.frame = f
	dc.order.MoveToBack(e)
	dc.evictLocked()
}

// frame returns the frame the channel relayed of m, when it is among its
// recent ones, or nil.
func (dc *deltaChannel) frame(m *Message) *Frame {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	for _, f := range dc.recent {
		if f != nil && f.ID == m.ID {
			return f
		}
	}
	return nil
}

// evictLocked forgets the stalest keys while the channel keeps too many
// or too many bytes, never the newest one. The caller holds mu.
func (dc *deltaChannel) evictLocked() {
	for dc.order.Len() > 1 && (dc.order.Len() > DeltaMaxKeys || dc.bytes > DeltaMaxBytes) {
		dc.dropLocked(dc.order.Front())
	}
}

// dropLocked forgets a key. The caller holds mu.
func (dc *deltaChannel) dropLocked(e *list.Element) {
	p := dc.order.Remove(e).(*deltaPrev)
	delete(dc.keys, p.key)
	dc.bytes -= len(p.frame.Data)
}

// DeltaFrom returns the id of the message that the frame can be sent as
// a patch against (see Delta), and whether there is one.
func (f *Frame) DeltaFrom() (ID, bool) {
	if f.delta == nil {
		return ID{}, false
	}
	return f.delta.base, true
}

// Delta returns the frame as a patch against its base (DeltaFrom): a
// frame of the same message whose Data is a Fossil delta and whose Base
// is the base's id, with encodings of its own. It is made once, by the
// first caller, and shared by every later one. Delta returns nil when
// the frame has no base or the patch is not smaller than the payload.
func (f *Frame) Delta() *Frame {
	fd := f.delta
	if fd == nil {
		return nil
	}
	fd.once.Do(func() {
		patch := fdelta.Create(fd.data, f.Data)
		if len(patch) < len(f.Data) {
			m := f.Message
			m.Data = patch
			fd.view = &Frame{Message: m, base: fd.base}
		}
	})
	return fd.view
}

// Base returns, for a frame that Delta made, the id of the message its
// Data patches, and whether it is such a frame.
func (f *Frame) Base() (ID, bool) {
	return f.base, !f.base.IsZero()
}

// clientBase is the id of the last message of a key that a delta
// subscription queued: the message its client holds for the key.
type clientBase struct {
	key string
	id  ID
}

// maxClientBases bounds the keys a delta subscription remembers; the
// messages of the others are sent in full.
const maxClientBases = 64

// deltaOn reports whether the subscription gets deltas: the one place
// that decides it (a subscription that conflates gets whole messages).
func (sub *subscription) deltaOn() bool { return sub.delta && sub.cf == nil }

// out returns what the subscription sends for message f, which it sends
// next: the shared patch when its client holds f's base, else f itself.
// It notes f as the message its client then holds for f's key.
func (sub *subscription) out(f *Frame) *Frame {
	if !sub.deltaOn() || f.IsPresence() {
		return f
	}
	held, known := sub.note(f.Key, f.ID)
	base, ok := f.DeltaFrom()
	if !ok {
		return f
	}
	// Without a message of the key since the trusted position, the
	// client holds the key's newest message up to it: the base, when the
	// base is at or before it.
	if known && held == base || !known && !sub.trust.IsZero() && !sub.trust.Less(base) {
		if v := f.Delta(); v != nil {
			return v
		}
	}
	return f
}

// lingerToken is a channel's delta state outliving its last delta
// subscriber: it holds that subscriber's Watch until timer ends it.
type lingerToken struct {
	timer *time.Timer // set and stopped holding the shard's mu
}

// attachDeltasLocked counts one more delta subscriber of l, making its
// state if it has none. It reports whether the state was lingering: the
// caller then undoes the Watch the state held, once its own is made.
// The caller holds the shard's mu.
func (h *Hub) attachDeltasLocked(l *listeners) (lingered bool) {
	if l.deltas++; l.delta == nil {
		l.delta = newDeltaChannel()
	}
	if l.linger == nil {
		return false
	}
	l.linger.timer.Stop()
	l.linger = nil
	return true
}

// detachDeltasLocked counts one delta subscriber of l less. When it was
// the last, the state lingers (with linger set), keeping the leaving
// subscriber's Watch: it reports true then. The caller holds sh.mu.
func (h *Hub) detachDeltasLocked(sh *shard, l *listeners, linger bool) bool {
	if l.deltas--; l.deltas > 0 {
		return false
	}
	if !linger || h.deltaLinger <= 0 {
		l.delta = nil
		return false
	}
	tok := &lingerToken{}
	tok.timer = time.AfterFunc(h.deltaLinger, func() { h.endLinger(sh, l.name, tok) })
	l.linger = tok
	return true
}

// endLinger drops a channel's lingering delta state and the Watch it
// held, unless a delta subscriber came back meanwhile.
func (h *Hub) endLinger(sh *shard, channel string, tok *lingerToken) {
	sh.mu.Lock()
	l := sh.chans[channel]
	if l == nil || l.linger != tok {
		sh.mu.Unlock()
		return
	}
	l.linger, l.delta = nil, nil
	if len(l.subs) == 0 {
		delete(sh.chans, channel)
	}
	sh.mu.Unlock()
	h.broker.Unwatch(channel)
}

// endLingers ends every lingering delta state at once (Shutdown).
func (h *Hub) endLingers() {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		var ended []*lingerToken
		var names []string
		for name, l := range sh.chans {
			if l.linger != nil {
				ended, names = append(ended, l.linger), append(names, name)
			}
		}
		sh.mu.RUnlock()
		for j, tok := range ended {
			tok.timer.Stop()
			h.endLinger(sh, names[j], tok)
		}
	}
}

// forgetDeltas starts channel's delta state afresh: its relay missed
// messages, so a previous message it kept may not be the one right
// before the next of its key.
func (h *Hub) forgetDeltas(channel string) {
	sh := h.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if l := sh.chans[channel]; l != nil && l.delta != nil {
		l.delta = newDeltaChannel()
	}
}

// Frame returns the frame to send for m, a message of a channel read
// from history: when the channel keeps a delta state that relayed m not
// long ago (among its last 64), the very frame the hub relayed, with its
// base and its shared patch; else a new frame, which has no base. A
// long-poll, whose messages published between two polls come from
// history, uses it to send them as deltas too.
func (h *Hub) Frame(m Message) *Frame {
	_, _, dc := h.shard(m.Channel).subscribers(m.Channel)
	if dc != nil {
		if f := dc.frame(&m); f != nil {
			return f
		}
	}
	return NewFrame(m)
}

// note records that the subscription's client gets message id of key
// next, and returns the one of the key it held before, if it knew it.
func (sub *subscription) note(key string, id ID) (held ID, known bool) {
	for i := range sub.bases {
		if sub.bases[i].key == key {
			held, sub.bases[i].id = sub.bases[i].id, id
			return held, true
		}
	}
	if len(sub.bases) == maxClientBases {
		sub.bases = append(sub.bases[:0], sub.bases[1:]...)
	}
	sub.bases = append(sub.bases, clientBase{key: key, id: id})
	return ID{}, false
}

// caughtUp notes the messages of a catch-up page that the caller sent to
// the client of a delta subscription of channel, in full: live messages
// after them may be patches against them.
func (s *Session) caughtUp(channel string, msgs []Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(channel)
	if i < 0 || !s.subs[i].deltaOn() {
		return
	}
	for j := range msgs {
		s.subs[i].note(msgs[j].Key, msgs[j].ID)
	}
}
