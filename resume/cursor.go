package resume

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/edgeworks/edge/edge"
)

// MaxCursorLen bounds the length of a cursor accepted from the network.
const MaxCursorLen = 32 << 10

// compositePrefix starts a cursor for several channels; a cursor for one
// channel is the bare message id ("<ms>-<seq>"), which starts with a digit.
const compositePrefix = "m."

// Cursor is a subscriber's position in each of its channels, in the order
// the channels were subscribed. For one channel it is written as that
// channel's message id, so it is exactly the SSE id of the last message;
// for several it is an opaque, URL-safe string: "m." followed by the
// unpadded base64url encoding of "chan=ms-seq,chan=ms-seq,…".
//
// The zero Cursor is empty and ready to use. A Cursor is not safe for
// concurrent use.
type Cursor struct {
	channels []string
	ids      []edge.ID
}

// Set records id as the position in channel, adding the channel if new.
func (c *Cursor) Set(channel string, id edge.ID) {
	for i, ch := range c.channels {
		if ch == channel {
			// Keep the caller's string: a hub delivers every frame of a
			// channel with one string, which then compares by pointer.
			c.channels[i], c.ids[i] = channel, id
			return
		}
	}
	c.channels = append(c.channels, channel)
	c.ids = append(c.ids, id)
}

// Get returns the position in channel, if the cursor has one.
func (c *Cursor) Get(channel string) (edge.ID, bool) {
	for i, ch := range c.channels {
		if ch == channel {
			return c.ids[i], true
		}
	}
	return edge.ID{}, false
}

// Delete forgets channel.
func (c *Cursor) Delete(channel string) {
	for i, ch := range c.channels {
		if ch == channel {
			c.channels = append(c.channels[:i], c.channels[i+1:]...)
			c.ids = append(c.ids[:i], c.ids[i+1:]...)
			return
		}
	}
}

// Len returns how many channels the cursor has a position in.
func (c *Cursor) Len() int { return len(c.channels) }

// String returns the cursor as sent to clients.
func (c *Cursor) String() string { return string(c.AppendTo(nil)) }

// AppendTo appends the cursor as sent to clients to b; an empty cursor
// appends nothing.
func (c *Cursor) AppendTo(b []byte) []byte {
	switch len(c.channels) {
	case 0:
		return b
	case 1:
		return c.ids[0].AppendTo(b)
	}
	var scratch [512]byte // most cursors fit: no allocation per written event
	raw := scratch[:0]
	for i, ch := range c.channels {
		if i > 0 {
			raw = append(raw, ',')
		}
		raw = append(raw, ch...)
		raw = append(raw, '=')
		raw = c.ids[i].AppendTo(raw)
	}
	b = append(b, compositePrefix...)
	return base64.RawURLEncoding.AppendEncode(b, raw)
}

// ParseCursor decodes a cursor a client sent for a subscription to
// channels. Positions for channels the subscription does not name are
// dropped; channels the cursor does not name have no position (they start
// live). A bare id is accepted only for a subscription to one channel.
// Every malformed cursor is an error wrapping edge.ErrBadCursor.
func ParseCursor(s string, channels []string) (Cursor, error) {
	var c Cursor
	if len(s) > MaxCursorLen {
		return c, fmt.Errorf("%w: cursor is %d bytes long, the limit is %d", edge.ErrBadCursor, len(s), MaxCursorLen)
	}
	if !strings.HasPrefix(s, compositePrefix) {
		id, err := edge.ParseID(s)
		if err != nil {
			return c, err
		}
		if len(channels) != 1 {
			return c, fmt.Errorf("%w: a bare id is a cursor for one channel; for several channels send the cursor the edge gave you", edge.ErrBadCursor)
		}
		c.Set(channels[0], id)
		return c, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s[len(compositePrefix):])
	if err != nil {
		return c, fmt.Errorf("%w: composite cursor is not base64url", edge.ErrBadCursor)
	}
	all := make(map[string]edge.ID)
	for part := range strings.SplitSeq(string(raw), ",") {
		ch, idText, ok := strings.Cut(part, "=")
		if !ok {
			return c, fmt.Errorf("%w: composite cursor entry %q is not channel=id", edge.ErrBadCursor, edge.Clip(part))
		}
		if err := edge.ValidateChannel(ch); err != nil {
			return c, fmt.Errorf("%w: %v", edge.ErrBadCursor, err)
		}
		if _, dup := all[ch]; dup {
			return c, fmt.Errorf("%w: channel %q appears twice", edge.ErrBadCursor, ch)
		}
		id, err := edge.ParseID(idText)
		if err != nil {
			return c, err
		}
		all[ch] = id
	}
	for _, ch := range channels {
		if id, ok := all[ch]; ok {
			c.Set(ch, id)
		}
	}
	return c, nil
}
