package main

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeCompressingEdge answers subscribes as an edge with compress=1 and
// delta=fossil would: gzip-encoded SSE and long-poll answers, WebSocket
// frames compressed with permessage-deflate, and every second message a
// delta. It sends its messages at once after the subscribe; what a
// subscriber asked for it records.
type fakeCompressingEdge struct {
	messages int // ids 1-1 … 1-messages; odd ids are deltas
	// frameBytes sums the uncompressed message objects and SSE events it
	// sent; gzipped and deflated counts whether it compressed them.
	frameBytes        atomic.Int64
	gzipped, deflated atomic.Int64
	query             atomic.Value // the last subscribe's query
	wsUp              websocket.Upgrader
}

// object returns message k as the JSON object of WebSocket frames and
// long-poll answers.
func (f *fakeCompressingEdge) object(k int) string {
	if k%2 == 1 {
		return fmt.Sprintf(`{"channel":"bench-0","id":"1-%d","event":"","delta":"1-%d","data":"%s"}`, k, k-1, `37\n2:ab4@12,\"x\";`)
	}
	data, _ := json.Marshal(string(appendDashboard(nil, uint64(k), time.Now().UnixNano(), 1024)))
	return fmt.Sprintf(`{"channel":"bench-0","id":"1-%d","event":"","data":%s}`, k, data)
}

// event returns message k as an SSE event.
func (f *fakeCompressingEdge) event(k int) string {
	if k%2 == 1 {
		return fmt.Sprintf("id: 1-%d\nevent: delta\ndata: {\"delta\":\"1-%d\",\"data\":\"37\\n2:ab;\"}\n\n", k, k-1)
	}
	return fmt.Sprintf("id: 1-%d\ndata: %s\n\n", k, appendDashboard(nil, uint64(k), time.Now().UnixNano(), 1024))
}

func (f *fakeCompressingEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.query.Store(r.URL.RawQuery)
	switch {
	case websocket.IsWebSocketUpgrade(r):
		f.serveWS(w, r)
	case q.Get("transport") == "poll":
		f.servePoll(w, r)
	default:
		f.serveSSE(w, r)
	}
}

// gzipWriter returns a writer for the answer to r, gzip-encoded when r
// accepts it, and a function that flushes it to the client.
func (f *fakeCompressingEdge) gzipWriter(w http.ResponseWriter, r *http.Request) (io.Writer, func()) {
	flusher := w.(http.Flusher)
	if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		return w, flusher.Flush
	}
	f.gzipped.Add(1)
	w.Header().Set("Content-Encoding", "gzip")
	gz := gzip.NewWriter(w)
	return gz, func() {
		gz.Flush()
		flusher.Flush()
	}
}

func (f *fakeCompressingEdge) serveSSE(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	out, flush := f.gzipWriter(w, r)
	io.WriteString(out, "id: 1-0\n\n")
	flush()
	for k := 1; k <= f.messages; k++ {
		e := f.event(k)
		f.frameBytes.Add(int64(len(e)))
		io.WriteString(out, e)
		flush()
	}
	<-r.Context().Done()
}

func (f *fakeCompressingEdge) servePoll(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("since") == fmt.Sprintf("1-%d", f.messages) {
		<-r.Context().Done() // held until the subscriber leaves
		return
	}
	out, flush := f.gzipWriter(w, r)
	if r.URL.Query().Get("timeout") == "0" {
		io.WriteString(out, `{"messages":[],"cursor":"1-0","gap":false}`)
	} else {
		var objs []string
		for k := 1; k <= f.messages; k++ {
			objs = append(objs, f.object(k))
		}
		body := `{"messages":[` + strings.Join(objs, ",") + fmt.Sprintf(`],"cursor":"1-%d","gap":false}`, f.messages)
		f.frameBytes.Add(int64(len(body)))
		io.WriteString(out, body)
	}
	if gz, ok := out.(*gzip.Writer); ok {
		gz.Close()
	}
	flush()
}

func (f *fakeCompressingEdge) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := f.wsUp.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	if strings.Contains(r.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		f.deflated.Add(1)
	}
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribed","channel":"bench-0","id":"1-0"}`))
	for k := 1; k <= f.messages; k++ {
		o := f.object(k)
		f.frameBytes.Add(int64(len(o)))
		conn.WriteMessage(websocket.TextMessage, []byte(o))
	}
	for {
		if _, _, err := conn.NextReader(); err != nil {
			return
		}
	}
}

// With --compress and --delta, every transport asks for both, decodes
// the compressed stream, counts deltas and full messages by id, and its
// meter counts the compressed bytes.
func TestCompressedDeltaSubscribers(t *testing.T) {
	const messages = 20
	for _, tr := range []string{transportWS, transportSSE, transportPoll} {
		t.Run(tr, func(t *testing.T) {
			fake := &fakeCompressingEdge{messages: messages, wsUp: websocket.Upgrader{EnableCompression: true}}
			srv := httptest.NewServer(fake)
			t.Cleanup(srv.Close)
			c := parse(t, "run", "--url", srv.URL, "--transport", tr, "--subs", "1", "--delta", "fossil", "--compress")
			f := newFleet(t.Context(), c, 0, 1)
			defer f.close()
			if r, err := f.ramp(); err != nil || r.Connected != 1 {
				t.Fatalf("ramp: %+v, %v", r, err)
			}
			f.rec.waitDelivered(nil, messages, 10*time.Second)
			f.close()
			s := f.subs[0]
			if s.ids.unique != messages || s.ids.dups != 0 || s.deltas != messages/2 || s.fulls != messages/2 || s.unparsed != 0 {
				t.Errorf("%d unique ids, %d repeated, %d deltas, %d full, %d unparsed; want %d ids, half of them deltas",
					s.ids.unique, s.ids.dups, s.deltas, s.fulls, s.unparsed, messages)
			}
			q, _ := url.ParseQuery(fake.query.Load().(string))
			if q.Get("delta") != "fossil" || q.Get("compress") != "1" {
				t.Errorf("subscribe query %q lacks delta=fossil and compress=1", fake.query.Load())
			}
			if tr == transportWS && fake.deflated.Load() == 0 || tr != transportWS && fake.gzipped.Load() == 0 {
				t.Errorf("the subscriber did not ask for compression (gzip %d, permessage-deflate %d)", fake.gzipped.Load(), fake.deflated.Load())
			}
			// Ten 1 KiB states that differ in a few fields compress well:
			// the wire carries far fewer bytes than the messages hold.
			if got, raw := s.meter.counts().received, fake.frameBytes.Load(); got*2 > raw {
				t.Errorf("the meter counted %d bytes for %d bytes of messages: not the compressed ones", got, raw)
			}
		})
	}
}

// fakeConflatingEdge sends an SSE subscriber the messages of seqs, as a
// conflating edge would send what was left of a channel's messages.
type fakeConflatingEdge struct{ seqs []uint64 }

func (f *fakeConflatingEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprint(w, "id: 1-0\n\n")
	for i, seq := range f.seqs {
		fmt.Fprintf(w, "id: 2-%d\ndata: %s\n\n", i, appendDashboard(nil, seq, time.Now().UnixNano(), 256))
	}
	w.(http.Flusher).Flush()
	<-r.Context().Done()
}

// A conflated run counts as lost only the last message of each key that
// did not arrive, and checks the order of what did.
func TestConflatedAccounting(t *testing.T) {
	tests := []struct {
		name                       string
		seqs                       []uint64
		published                  int64
		keys                       string
		lost, dups, reordered, got int64
	}{
		{"latest of each window", []uint64{4, 9, 14, 19}, 20, "0", 0, 0, 0, 4},
		{"the last missing", []uint64{4, 9, 14, 18}, 20, "0", 1, 0, 0, 4},
		{"the last of each of 3 keys", []uint64{5, 11, 17, 18, 19}, 20, "3", 0, 0, 0, 5},
		{"one key's last missing", []uint64{5, 11, 16, 17, 19}, 20, "3", 1, 0, 0, 5},
		{"a repeat", []uint64{4, 9, 9, 19}, 20, "0", 0, 1, 0, 3},
		{"out of order", []uint64{9, 4, 19}, 20, "0", 0, 0, 1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(&fakeConflatingEdge{seqs: tt.seqs})
			t.Cleanup(srv.Close)
			c := parse(t, "run", "--url", srv.URL, "--transport", "sse", "--subs", "1", "--conflate", "50ms",
				"--key-count", tt.keys, "--payload", "dashboard", "--size", "256")
			f := newFleet(t.Context(), c, 0, 1)
			defer f.close()
			if r, err := f.ramp(); err != nil || r.Connected != 1 {
				t.Fatalf("ramp: %+v, %v", r, err)
			}
			if err := f.drain([]int64{tt.published}); err != nil {
				t.Fatal(err)
			}
			tally, err := f.finish()
			if err != nil {
				t.Fatal(err)
			}
			if tally.Lost != tt.lost || tally.Duplicated != tt.dups || tally.Reordered != tt.reordered || tally.Delivered != tt.got {
				t.Errorf("lost %d, duplicated %d, reordered %d, delivered %d; want %d, %d, %d, %d",
					tally.Lost, tally.Duplicated, tally.Reordered, tally.Delivered, tt.lost, tt.dups, tt.reordered, tt.got)
			}
		})
	}
}
