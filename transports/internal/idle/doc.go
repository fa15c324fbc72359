// Package idle parks idle connections without a goroutine each: a
// Watcher waits for any of them to become readable, with one goroutine
// for all, and calls the connection's ready function when one does, so
// that a goroutine is started only when there is something to read.
//
// An idle SSE stream or WebSocket connection otherwise keeps a goroutine
// blocked in a read (at least 2 KiB of stack and the goroutine's own
// struct, more than all the rest it holds). Parked, it keeps a few dozen
// bytes here instead.
//
// On Linux the Watcher is an epoll instance of its own, beside the Go
// runtime's: each parked socket is in its set level-triggered and
// one-shot for EPOLLIN and EPOLLRDHUP (errors and hang-ups are always
// reported), so a socket that became readable is reported once, to one
// ready call, until it is parked again; data that arrived before the
// park is reported at once. Elsewhere nothing can be parked (Add returns
// nil) and callers keep a goroutine reading.
//
// Only the socket is watched: bytes a caller already read into a buffer
// above it (bufio, gorilla's reader, a TLS record) are invisible here.
// Park only a connection whose reader holds nothing buffered, and never
// a TLS connection.
package idle
