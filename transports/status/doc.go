// Package status serves the edge's live status page: an HTML page (no
// external resources, no build step) that shows, at a glance, connections
// per transport, messages per second, publish-to-deliver latency and the
// state of the store, as small charts of the last five minutes.
//
// A Status samples a reading of the server once a second (Run) and keeps
// the last Points samples in a ring. ServePage serves the page;
// ServeEvents streams the ring and then every new sample to the page over
// Server-Sent Events, the edge's own transport:
//
//	retry: 2000
//
//	event: history
//	data: [{"t":1732270000000,"connections":{"poll":0,"sse":2,"ws":5},…},…]
//
//	event: sample
//	data: {"t":1732270001000,…}
//
// Each sample is a Point in JSON. At most MaxViewers streams are served at
// once; a viewer that falls behind is dropped (its stream ends and
// EventSource reconnects), so viewers never hold the sampler back.
package status
