package transports

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/edgeworks/edge/edge"
)

// handlePresence serves GET /v1/presence?channel=A: the members of a
// channel that keeps presence (Config.Presence), fleet-wide, at most
// Config.PresenceMaxMembers of them, and their exact count:
//
//	{"channel":"A","count":2,"members":[{"conn":"…","sub":"…","info":"…","node":"…"},…],"truncated":false}
//
// It is read under the rules of subscribing to the channel, as history
// is; a channel that keeps no presence is a 404 presence_off.
func (s *Server) handlePresence(w http.ResponseWriter, r *http.Request) {
	channel, ok := s.readableChannel(w, r)
	if !ok {
		return
	}
	if !s.hub.KeepsPresence(channel) {
		writeError(w, fmt.Errorf("%w: channel %q keeps no presence; the edge keeps it for the channels matching --presence", edge.ErrPresenceOff, channel))
		return
	}
	members, count, err := s.hub.Members(r.Context(), channel, s.cfg.PresenceMaxMembers)
	if err != nil {
		writeError(w, err)
		return
	}
	b := []byte(`{"channel":`)
	b = appendJSONString(b, channel)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, int64(count), 10)
	b = append(b, `,"members":[`...)
	for i := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMemberJSON(b, &members[i])
	}
	b = append(b, `],"truncated":`...)
	b = strconv.AppendBool(b, len(members) < count)
	writeJSONBytes(w, http.StatusOK, append(b, '}'))
}
