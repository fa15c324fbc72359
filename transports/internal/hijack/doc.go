// Package hijack holds the places where the edge steps below net/http and
// gorilla/websocket and speaks the wire itself, on connections it takes
// over. Each is a workaround that saves memory or goroutines on idle
// connections, and each rests on how those libraries behave rather than
// on what they promise; the tests of this package pin every such
// assumption, so that an upgrade of Go or gorilla that breaks one fails
// here first, by name.
//
// # Hand-written HTTP/1.1 responses
//
// An HTTP/1 SSE stream and a long-poll that waits (a parked poll) take
// their connection from net/http (Take), so that while idle they hold
// none of net/http's buffers or goroutines. Their answers are then
// written by hand: AppendStreamHead starts a stream whose body runs until
// the connection closes, and AppendJSON writes a whole JSON answer with
// its Content-Length (AppendEncodedJSON one in a content coding, such as
// a gzip-encoded long-poll answer). Both must stay valid HTTP/1.1 for every client
// parser; the tests read them with net/http's client and with a strict
// parser of their own.
//
// Assumption: http.Hijacker hands over every byte net/http read from the
// connection beyond the current request in the returned bufio.Reader
// (including the byte of its background read), so a client's next,
// pipelined request is not lost (Take returns them as pending).
//
// # Giving a connection back to net/http
//
// A parked long-poll answers on its hijacked connection and then gives
// it back (Listener.GiveBack): Listener is the server's listener, and
// Accept hands net/http given-back connections as if they were new ones,
// so the client's next request on its keep-alive connection is served as
// usual. The bytes of that request that net/http had already read are
// replayed first (ReplayConn).
//
// Assumption: net/http serves a connection that Accept returns from its
// first byte, with no state of an earlier request on it; a keep-alive
// client reuses it after a hand-written answer with Content-Length.
//
// # Plain HTTP/1.1 requests read by hand
//
// The publish lane of package transports reads the requests of
// keep-alive publishers itself (ParseRequestHead) and hands a connection
// to net/http at the first request outside the plain subset it reads,
// replaying what it read (Replay).
//
// Assumption: whatever ParseRequestHead accepts, net/http's server reads
// as the same method, target, Host, fields, length and Connection: close
// (FuzzRequestHead compares the two on every input it accepts); and
// net/http serves a connection that starts with replayed bytes as one
// that starts with them on the wire (the first assumption of the
// listener, above).
//
// # Writing WebSocket frames around gorilla
//
// A connection that negotiated no compression is written the edge's
// messages as frames the edge encodes (AppendTextFrame), straight to the
// connection; gorilla still writes control frames, coalesced arrays and
// errors.
//
// Assumptions: gorilla writes a frame with one Write of the whole frame,
// and writes only when asked, but for the close frame it answers itself
// to a client that broke the protocol or sent a message over the read
// limit (its answers to ping and close go through handlers the edge
// sets); and it negotiates permessage-deflate only when the client's
// Sec-WebSocket-Extensions names it. The one write gorilla makes on its
// own can meet a frame of the edge's only on a connection whose client
// broke the protocol while its socket was full: that client may see its
// last frame cut before the close.
//
// # Waiting for WebSocket frames outside gorilla
//
// An idle WebSocket connection is parked with no goroutine (package
// internal/idle watches its socket), which is only possible when nothing
// the client sent waits in a buffer above the socket, and a reader that
// waits inside gorilla's NextReader would keep a deep stack and, after a
// pong (the answer to every heartbeat ping) handled there, wait inside
// gorilla for the next message. So the edge keeps the bufio.Reader that
// gorilla reads through (UpgradeResponse): its reader parks the connection
// when that reader holds nothing buffered, and otherwise waits in
// SkipPong, which peeks at the next frame header and consumes a pong frame
// itself (a final, masked one with a payload of at most 125 bytes, as
// clients send; anything else is left to gorilla, which handles it as
// before).
//
// Assumptions: with Upgrader.ReadBufferSize 0, gorilla reads the
// connection through the hijacked bufio.Reader when that is larger than
// 256 bytes, and through nothing else; between messages (once a message
// is read to its end) gorilla has consumed exactly the frames it
// returned, so the reader is at a frame boundary, and nothing of the
// connection is buffered but in that reader; gorilla refuses a
// handshake whose client sent data early (UpgradeResponse then hands it
// net/http's reader, so that it sees the data and refuses).
package hijack
