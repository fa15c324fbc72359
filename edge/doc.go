// Package edge is the hub of the edge fan-out server: the channel registry,
// subscriber sessions with bounded queues, fan-out, limits, configuration,
// errors and the Broker interface that stores and relays messages.
//
// Package edge imports nothing else from this repository. Brokers (the
// embedded memory store, Redis) live in package resume; the HTTP surface
// (WebSocket, SSE, long-polling) lives in package transports.
//
// Data flow: Broker.Publish stores a message and relays it to every node;
// the Hub receives it once, wraps it in a Frame (whose wire encodings are
// built once and shared by every subscriber) and enqueues the Frame on each
// local Session's bounded queue. A Session that falls too far behind is
// closed as a slow consumer; its client resumes from history.
//
// Presence: for the channels Config.Presence names, a Broker that
// implements Presence keeps who subscribes, fleet-wide. A Session that
// SetMember identified is a member of each such channel while it
// subscribes it; the hub sends the joins and leaves to the store off the
// fan-out path, in order per member, and fans the store's announcements
// out as presence frames (no id, not history) to the sessions that
// HearPresence asked for.
//
// Conflation: a Session that SetConflate asked for a window gets, per
// window, only the newest live message of each conflation key
// (Message.Key, the publish's key=; messages without one share the
// channel's key). The first message after a quiet window is queued at
// once and opens a window; those arriving within it are held, each
// replacing the held one of its key, and queued together in id order when
// it ends, which opens the next window if any were held. Held messages
// are the hub's shared Frames (nothing is encoded per subscriber), at
// most MaxConflateKeys per subscription (one more key ends the window at
// once), counted against Config.QueueBytes; each conflating subscription
// has one timer, stopped when it ends. Ids stay the stored ids, so a
// resume from any delivered id is exact. Presence frames are never
// conflated. A transport passes the catch-up pages of a conflating
// subscription (Joining.Conflate) through ConflatePage.
package edge
