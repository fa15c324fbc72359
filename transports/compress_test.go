package transports_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/transports"
)

// decodedBody returns the body of resp, decoded when it is gzip-encoded:
// with gzipped, a 200 answer must be, and Vary by Accept-Encoding;
// without, no answer may be.
func decodedBody(resp *http.Response, gzipped bool) (io.Reader, error) {
	enc := resp.Header.Get("Content-Encoding")
	if !gzipped || resp.StatusCode != http.StatusOK {
		if enc != "" {
			return nil, fmt.Errorf("status %d with Content-Encoding %q, want none", resp.StatusCode, enc)
		}
		return resp.Body, nil
	}
	if enc != "gzip" || !slices.Contains(resp.Header.Values("Vary"), "Accept-Encoding") {
		return nil, fmt.Errorf("Content-Encoding %q, Vary %q; want gzip, varying by Accept-Encoding", enc, resp.Header.Values("Vary"))
	}
	return &lazyGzip{r: resp.Body}, nil
}

// lazyGzip decodes a gzip stream from its first Read, so that opening a
// stream does not wait for its first bytes.
type lazyGzip struct {
	r  io.Reader
	zr *gzip.Reader
}

func (l *lazyGzip) Read(p []byte) (int, error) {
	if l.zr == nil {
		zr, err := gzip.NewReader(l.r)
		if err != nil {
			return 0, err
		}
		l.zr = zr
	}
	return l.zr.Read(p)
}

// openGzipSSE opens an SSE stream with compress=1 (query holds the rest)
// and Accept-Encoding: gzip, fails unless the answer is gzip-encoded,
// and reads it decoding it as it comes. header may carry Last-Event-ID.
func openGzipSSE(t *testing.T, e *testEdge, header http.Header, query ...string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url("/v1/subscribe", append(query, "compress", "1")...), nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Accept-Encoding", "gzip") // set by hand: net/http does not decode the answer
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	body, err := decodedBody(resp, true)
	if err != nil {
		resp.Body.Close()
		cancel()
		t.Fatal(err)
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{body, resp.Body}
	c := &sseClient{t: t, resp: resp, events: make(chan sseEvent, 1024), cancel: cancel}
	go c.read()
	t.Cleanup(c.close)
	return c
}

// compressedColumns subscribe compressed, as contractColumns do plain.
var compressedColumns = []column{
	{name: "sse-gzip", open: openGzipSSESub, refuse: refuseSSE},
	{name: "sse-multi-gzip", multi: true, open: openGzipSSESub, refuse: refuseSSE},
	{name: "poll-gzip", open: openGzipPoll, refuse: refusePoll},
	{name: "ws-deflate", open: openDeflateWS, refuse: refuseWSURL},
}

func openGzipSSESub(t *testing.T, e *testEdge, channels []string, cursor string) subscriber {
	t.Helper()
	h := http.Header{}
	if cursor != "" {
		h.Set("Last-Event-ID", cursor)
	}
	return &sseSub{c: openGzipSSE(t, e, h, channelQuery(channels)...), channels: channels}
}

func openGzipPoll(t *testing.T, e *testEdge, channels []string, cursor string) subscriber {
	t.Helper()
	return openPollWith(t, e, channels, cursor, true)
}

// openDeflateWS subscribes with channel= in the URL and compress=1,
// offering permessage-deflate, and fails unless the edge takes it.
func openDeflateWS(t *testing.T, e *testEdge, channels []string, cursor string) subscriber {
	t.Helper()
	q := []string{"channel", channels[0], "compress", "1"}
	if cursor != "" {
		q = append(q, "since", cursor)
	}
	conn, resp, err := (&websocket.Dialer{EnableCompression: true}).Dial(e.wsURL(q...), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if ext := resp.Header.Get("Sec-Websocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("extensions %q, want permessage-deflate", ext)
	}
	return &wsSub{conn: conn}
}

// TestContractCompressed proves the contract of TestContract through
// compressed streams, on the embedded store, Redis and Redis Cluster: exactly once,
// in order, across the seam of a resume, with gaps signalled. A stream
// that held an event back in its compressor would fail join-race, which
// waits for each message before it publishes the next one.
func TestContractCompressed(t *testing.T) {
	for _, b := range contractBackends {
		if b.name == "redis-sentinel" { // Redis behind another door: nothing compression meets
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			use := b.start(t)
			for _, col := range compressedColumns {
				t.Run(col.name, func(t *testing.T) {
					c := cell{use: use, col: col}
					t.Run("join-race", c.joinRace)
					t.Run("resume-seam", c.resumeSeam)
					t.Run("gap", c.gap)
					t.Run("future-cursor", c.futureCursor)
				})
			}
		})
	}
}

// A compressed SSE stream delivers each event as soon as it is
// published, while the stream goes on: the client decodes event n before
// event n+1 exists. It resumes exactly from Last-Event-ID, and ends the
// gzip member cleanly (its checksum verified) when the edge closes it.
func TestCompressedSSEFlushesEachEvent(t *testing.T) {
	e := startEdge(t, transports.Config{})
	c := openGzipSSE(t, e, nil, "channel", "flush")
	c.lastID()
	var ids []string
	for i := range 20 {
		data := fmt.Sprintf(`{"n":%d,"state":"%s"}`, i, strings.Repeat("x", i*50))
		ids = append(ids, e.publish("flush", data))
		if ev := c.next(); ev.ID != ids[i] || ev.Data != data {
			t.Fatalf("event %d: %+v, want id %s", i, ev, ids[i])
		}
	}

	resumed := openGzipSSE(t, e, http.Header{"Last-Event-Id": {ids[5]}}, "channel", "flush")
	var got []string
	for {
		ev := resumed.nextAny()
		if ev.HasID && ev.Data == "" && ev.Event == "" {
			break // live from here
		}
		if ev.Comment == "" {
			got = append(got, ev.ID)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ids[6:]) {
		t.Fatalf("resumed from %s: %v, want %v", ids[5], got, ids[6:])
	}

	// The drain writes the disconnect event, which ends the member.
	c.cancel() // the first stream's reader is done with
	raw := openRawGzipSSE(t, e, "channel", "flush")
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(raw)
	if err != nil {
		t.Fatalf("reading the stream to its end: %v (after %q)", err, b)
	}
	if !strings.Contains(string(b), "event: disconnect\n") {
		t.Fatalf("the stream ended without its disconnect event: %q", b)
	}
}

// openRawGzipSSE opens a compressed SSE stream and returns its decoded
// body, for reading to its end.
func openRawGzipSSE(t *testing.T, e *testEdge, query ...string) io.Reader {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url("/v1/subscribe", append(query, "compress", "1")...), nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	body, err := decodedBody(resp, true)
	if err != nil {
		t.Fatal(err)
	}
	// Read up to the id-only event, which the stream sends once live.
	br := bufio.NewReader(body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "id: ") {
			return br
		}
	}
}

// compressTransports are the ways to subscribe, each reporting whether
// the edge compressed what it answered: allows says whether the client
// allows compression (Accept-Encoding, a WebSocket's deflate offer), ae
// the Accept-Encoding of SSE and long-poll when it does.
var compressTransports = []struct {
	name    string
	request func(t *testing.T, e *testEdge, query []string, allows bool, ae string) (compressed bool, status int)
}{
	{"sse", func(t *testing.T, e *testEdge, query []string, allows bool, ae string) (bool, int) {
		h := http.Header{"Accept": {"text/event-stream"}}
		return getCompressed(t, e, query, allows, ae, h, "id: ")
	}},
	{"poll", func(t *testing.T, e *testEdge, query []string, allows bool, ae string) (bool, int) {
		return getCompressed(t, e, append(query, "transport", "poll", "since", "0-0"), allows, ae, http.Header{}, `"messages":[{`)
	}},
	{"ws", func(t *testing.T, e *testEdge, query []string, allows bool, _ string) (bool, int) {
		conn, resp, err := (&websocket.Dialer{EnableCompression: allows}).Dial(e.wsURL(query...), nil)
		if err != nil {
			if resp == nil {
				t.Fatal(err)
			}
			return false, resp.StatusCode
		}
		defer conn.Close()
		c := &wsClient{t: t, conn: conn}
		c.readControl("subscribed")
		return strings.Contains(resp.Header.Get("Sec-Websocket-Extensions"), "permessage-deflate"), resp.StatusCode
	}},
}

// getCompressed GETs /v1/subscribe with query and, where the client
// allows compression, Accept-Encoding ae (none otherwise: net/http adds
// none), reads the answer up to want, and reports whether it was
// gzip-encoded.
func getCompressed(t *testing.T, e *testEdge, query []string, allows bool, ae string, h http.Header, want string) (bool, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url("/v1/subscribe", query...), nil)
	req.Header = h
	if allows {
		req.Header.Set("Accept-Encoding", ae)
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	compressed := resp.Header.Get("Content-Encoding") == "gzip"
	body, err := decodedBody(resp, compressed)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return compressed, resp.StatusCode
	}
	br := bufio.NewReader(body)
	var read strings.Builder
	for !strings.Contains(read.String(), want) {
		line, err := br.ReadString('\n')
		read.WriteString(line)
		if err != nil {
			t.Fatalf("answer %q: %v before %q", read.String(), err, want)
		}
	}
	return compressed, resp.StatusCode
}

// Every transport compresses exactly when the mode, compress= and the
// client all allow it; under request, the default, a client's plain
// offer (a browser's Accept-Encoding or deflate offer) is declined.
func TestCompressNegotiation(t *testing.T) {
	modes := []transports.CompressMode{transports.CompressRequest, transports.CompressAlways, transports.CompressNever}
	cases := []struct {
		name     string
		compress string // compress=; "" leaves it out
		allows   bool   // the client allows compression
		ae       string // Accept-Encoding where it does
		want     map[transports.CompressMode]bool
	}{
		{"compress=1, gzip", "1", true, "gzip, deflate, br, zstd",
			map[transports.CompressMode]bool{transports.CompressRequest: true, transports.CompressAlways: true}},
		{"compress=true, star", "true", true, "br;q=1, *;q=0.5",
			map[transports.CompressMode]bool{transports.CompressRequest: true, transports.CompressAlways: true}},
		{"compress=1, nothing allowed", "1", false, "", nil},
		{"plain offer", "", true, "gzip, deflate, br, zstd",
			map[transports.CompressMode]bool{transports.CompressAlways: true}},
		{"compress=0", "0", true, "gzip", nil},
		{"compress=false", "false", true, "gzip", nil},
	}
	edges := map[transports.CompressMode]*testEdge{}
	for _, m := range modes {
		edges[m] = startEdge(t, transports.Config{Compress: m})
		edges[m].publish("neg", "a message for polls to answer at once")
	}
	for _, tr := range compressTransports {
		for _, m := range modes {
			for _, tc := range cases {
				t.Run(fmt.Sprintf("%s/%s/%s", tr.name, m, tc.name), func(t *testing.T) {
					q := []string{"channel", "neg"}
					if tc.compress != "" {
						q = append(q, "compress", tc.compress)
					}
					got, status := tr.request(t, edges[m], q, tc.allows, tc.ae)
					if status >= 300 || got != tc.want[m] {
						t.Fatalf("status %d, compressed %v; want compressed %v", status, got, tc.want[m])
					}
				})
			}
		}
	}
	// gzip refused: a client that asks with compress=1 but whose
	// Accept-Encoding refuses gzip gets plain answers.
	for _, tr := range compressTransports[:2] {
		for _, ae := range []string{"gzip;q=0", "*, gzip;q=0", "br, deflate", "identity"} {
			t.Run(fmt.Sprintf("%s/always/compress=1, %s", tr.name, ae), func(t *testing.T) {
				if got, status := tr.request(t, edges[transports.CompressAlways], []string{"channel", "neg", "compress", "1"}, true, ae); got || status >= 300 {
					t.Fatalf("status %d, compressed %v; want plain", status, got)
				}
			})
		}
	}
}

// A compress= that is no flag is the JSON 400 on every transport and in
// every mode, before any work.
func TestCompressHostileValues(t *testing.T) {
	values := []string{"yes", "2", "-1", "TRUE", "on", "1 ", " 1", "1,0", "\x00", "%", strings.Repeat("1", 5000)}
	for _, m := range []transports.CompressMode{transports.CompressRequest, transports.CompressAlways, transports.CompressNever} {
		e := startEdge(t, transports.Config{Compress: m})
		for _, tr := range compressTransports {
			for _, v := range values {
				t.Run(fmt.Sprintf("%s/%s/%.12q", m, tr.name, v), func(t *testing.T) {
					status, ans := hostileCompress(t, e, tr.name, v)
					if status != http.StatusBadRequest || ans.Error.Code != "bad_request" || !strings.Contains(ans.Error.Message, "compress=") {
						t.Fatalf("%d %+v, want 400 bad_request naming compress=", status, ans)
					}
				})
			}
		}
	}
}

// hostileCompress subscribes over transport with compress=v, offering
// compression, and returns the status and the error answer.
func hostileCompress(t *testing.T, e *testEdge, transport, v string) (int, errorAnswer) {
	t.Helper()
	var ans errorAnswer
	q := []string{"channel", "hostile", "compress", v}
	switch transport {
	case "ws":
		conn, resp, err := (&websocket.Dialer{EnableCompression: true}).Dial(e.wsURL(q...), nil)
		if err == nil {
			conn.Close()
			t.Fatal("upgraded")
		}
		if resp == nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, ans
	case "sse":
		return getJSON(t, e.url("/v1/subscribe", q...), http.Header{"Accept": {"text/event-stream"}, "Accept-Encoding": {"gzip"}}, &ans), ans
	}
	return getJSON(t, e.url("/v1/subscribe", q...), http.Header{"Accept-Encoding": {"gzip"}}, &ans), ans
}

// Over HTTP/2, where the stream is not taken from net/http, a compressed
// SSE stream still delivers each event as it is published, and a
// compressed long-poll answer decodes.
func TestCompressedOverHTTP2(t *testing.T) {
	e := startEdge(t, transports.Config{})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	get := func(ctx context.Context, h http.Header, query ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url("/v1/subscribe", append(query, "compress", "1")...), nil)
		req.Header = h
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 2 {
			t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
		}
		return resp
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := get(ctx, http.Header{"Accept": {"text/event-stream"}}, "channel", "h2z")
	defer resp.Body.Close()
	body, err := decodedBody(resp, true)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{body, resp.Body}
	c := &sseClient{t: t, resp: resp, events: make(chan sseEvent, 16), cancel: cancel}
	go c.read()
	c.lastID()
	var ids []string
	for i := range 5 {
		ids = append(ids, e.publish("h2z", fmt.Sprintf("over h2 %d", i)))
		if ev := c.next(); ev.ID != ids[i] || ev.Data != fmt.Sprintf("over h2 %d", i) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}

	poll := get(context.Background(), http.Header{}, "channel", "h2z", "transport", "poll", "since", ids[1])
	defer poll.Body.Close()
	pb, err := decodedBody(poll, true)
	if err != nil {
		t.Fatal(err)
	}
	var a pollAnswer
	if err := json.NewDecoder(pb).Decode(&a); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range a.Messages {
		got = append(got, m.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(ids[2:]) || a.Cursor != ids[4] {
		t.Fatalf("poll from %s: %v, cursor %s; want %v", ids[1], got, a.Cursor, ids[2:])
	}
}

// edge_compressed_streams counts the open compressed SSE streams and
// WebSocket connections, and only those.
func TestCompressedStreamsGauge(t *testing.T) {
	e := startEdge(t, transports.Config{})
	gauge := func() float64 {
		n, _ := value(scrape(t, e), "edge_compressed_streams")
		return n
	}
	waitGauge := func(want float64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for gauge() != want { // each scrape is a round trip, which paces the loop
			if time.Now().After(deadline) {
				t.Fatalf("edge_compressed_streams %v, want %v", gauge(), want)
			}
		}
	}
	plain := openSSE(t, e.url("/v1/subscribe", "channel", "g"), nil)
	plain.lastID()
	sse := openGzipSSE(t, e, nil, "channel", "g")
	sse.lastID()
	ws := openDeflateWS(t, e, []string{"g"}, "")
	waitGauge(2)
	sse.close()
	ws.close()
	waitGauge(0)
}

// Compression and conflation together: a compressed stream or answer
// that conflates carries the newest message of each key, decoded intact.
func TestCompressedConflated(t *testing.T) {
	e := startEdge(t, transports.Config{})
	t.Run("sse", func(t *testing.T) {
		c := openGzipSSE(t, e, nil, "channel", "cz-sse", "conflate", "100ms")
		c.lastID()
		ids := publishBurst(t, e, "cz-sse", 10)
		newest := map[string]string{"a#8": ids[8], "b#9": ids[9]}
		for len(newest) > 0 {
			ev := c.next()
			if !slices.Contains(ids, ev.ID) {
				t.Fatalf("event %+v is none of the burst's %v", ev, ids)
			}
			if id, ok := newest[ev.Data]; ok && id == ev.ID {
				delete(newest, ev.Data)
			}
		}
	})
	t.Run("poll", func(t *testing.T) {
		start := e.publish("cz-poll", "before")
		ids := publishBurst(t, e, "cz-poll", 10)
		resp := pollGzip(t, e, "channel", "cz-poll", "since", start, "conflate", "100ms")
		var got []string
		for _, m := range resp.Messages {
			got = append(got, m.ID+"="+m.Data)
		}
		if want := []string{ids[8] + "=a#8", ids[9] + "=b#9"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("conflated answer %v, want %v", got, want)
		}
	})
}

// pollGzip long-polls with compress=1 and Accept-Encoding: gzip, and
// decodes the answer, which must be gzip-encoded.
func pollGzip(t *testing.T, e *testEdge, query ...string) pollAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url("/v1/subscribe", append(query, "compress", "1")...), nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := decodedBody(resp, true)
	if err != nil {
		t.Fatal(err)
	}
	var a pollAnswer
	if err := json.NewDecoder(body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	return a
}
