package resume

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/edgeworks/edge/edge"
)

// maxOnceKeys bounds the idempotency keys the embedded store remembers
// over all channels: with a 10-minute window, 166 keyed publishes a second
// sustained. Past it the oldest keys are forgotten before their window
// ends.
const maxOnceKeys = 100_000

// onceKeys remembers the idempotency keys of recent publishes (see
// edge.OncePublisher): for each channel and key, the id of the message
// published with it and a digest of its event and data, for window after
// the publish. It is safe for concurrent use.
type onceKeys struct {
	window time.Duration
	max    int

	mu    sync.Mutex
	byKey map[onceKey]onceEntry // mu guards byKey, order and head
	order []onceRecord          // keys in the order remembered, from head on
	head  int
}

type onceKey struct{ channel, key string }

// onceEntry is what a key remembers.
type onceEntry struct {
	id  edge.ID
	sum [sha256.Size]byte
	at  time.Time
}

// onceRecord is a key in the order remembered, with when.
type onceRecord struct {
	key onceKey
	at  time.Time
}

func newOnceKeys(window time.Duration, max int) *onceKeys {
	return &onceKeys{window: window, max: max, byKey: make(map[onceKey]onceEntry)}
}

// onceSum is the digest of a message that a key names.
func onceSum(event string, data []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(event))
	h.Write([]byte{'\n'})
	h.Write(data)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// lookup returns the id published with key on channel within the window
// at now, and true; or an error wrapping edge.ErrBadRequest when that
// publish had another digest; or false when the key is free.
func (o *onceKeys) lookup(channel, key string, sum [sha256.Size]byte, now time.Time) (edge.ID, bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.byKey[onceKey{channel, key}]
	if !ok || now.Sub(e.at) >= o.window {
		return edge.ID{}, false, nil
	}
	if e.sum != sum {
		return edge.ID{}, false, fmt.Errorf("%w: the idempotency key %q was used for another message of channel %q within %v", edge.ErrBadRequest, edge.Clip(key), channel, o.window)
	}
	return e.id, true, nil
}

// remember notes that key published id on channel at now, forgetting the
// keys whose window has ended, and the oldest past max.
func (o *onceKeys) remember(channel, key string, id edge.ID, sum [sha256.Size]byte, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := onceKey{channel, key}
	o.byKey[k] = onceEntry{id: id, sum: sum, at: now}
	o.order = append(o.order, onceRecord{k, now})
	for o.head < len(o.order) {
		r := o.order[o.head]
		if now.Sub(r.at) < o.window && len(o.order)-o.head <= o.max {
			break
		}
		if e, ok := o.byKey[r.key]; ok && e.at.Equal(r.at) {
			delete(o.byKey, r.key) // not a later publish with the same key
		}
		o.order[o.head] = onceRecord{}
		o.head++
	}
	if o.head > len(o.order)/2 {
		o.order = append(o.order[:0], o.order[o.head:]...)
		o.head = 0
	}
}
