// Package transports is the HTTP surface of edge: one subscribe URL that
// serves WebSocket, Server-Sent Events and long-polling (negotiated per
// request), publishing, history, health endpoints, and the Server that runs
// them with graceful drain.
//
// Every message is encoded once per wire format (edge.Frame caches the
// encodings) and each connection has exactly one writer goroutine.
package transports
