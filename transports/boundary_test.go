package transports_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

// GET /v1/history reads a channel under the rules of subscribing to it:
// the same token sources (Authorization: Bearer, access_token=, the
// edge_token cookie), 401 without a token, 403 with one that does not
// cover the channel, and no token for --anonymous channels.
func TestHistoryNeedsSubscribeRights(t *testing.T) {
	e := startEdge(t, transports.Config{JWTSecret: testSecret, Anonymous: []string{"public:*"}})
	e.publish("private", "secret payload")
	e.publish("public:news", "hello")
	reader := token(t, "42", []string{"private"}, nil, time.Hour)
	other := token(t, "43", []string{"user:43:*"}, nil, time.Hour)
	publisher := token(t, "44", nil, []string{"*"}, time.Hour)
	for _, tc := range []struct {
		name   string
		query  []string
		header http.Header
		status int
		code   string
	}{
		{"no token", []string{"channel", "private"}, nil, 401, "unauthorized"},
		{"token for other channels", []string{"channel", "private"}, bearer(other), 403, "forbidden"},
		{"publish-only token", []string{"channel", "private"}, bearer(publisher), 403, "forbidden"},
		{"bad token", []string{"channel", "private"}, bearer("not.a.token"), 401, "unauthorized"},
		{"bearer token", []string{"channel", "private"}, bearer(reader), 200, ""},
		{"access_token parameter", []string{"channel", "private", "access_token", reader}, nil, 200, ""},
		{"cookie", []string{"channel", "private"}, http.Header{"Cookie": {"edge_token=" + reader}}, 200, ""},
		{"anonymous channel", []string{"channel", "public:news"}, nil, 200, ""},
		{"anonymous channel with another's token", []string{"channel", "public:news"}, bearer(other), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var page struct {
				Messages []wireMessage
				Error    struct{ Code, Message string }
			}
			st := getJSON(t, e.url("/v1/history", tc.query...), tc.header, &page)
			if st != tc.status || page.Error.Code != tc.code {
				t.Fatalf("%d %+v, want %d %q", st, page.Error, tc.status, tc.code)
			}
			if st != 200 && len(page.Messages) > 0 {
				t.Fatalf("a refusal carries messages: %+v", page.Messages)
			}
			if st == 200 && len(page.Messages) != 1 {
				t.Fatalf("%d messages, want the 1 published", len(page.Messages))
			}
		})
	}
}

// rawRequest sends head (and body) on a new connection to e and returns
// the connection and a reader of its answers.
func rawRequest(t *testing.T, e *testEdge, head string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// readJSONError reads an answer and checks that it is the JSON error
// with status and code; it returns the answer, whose body it read, and
// the error's message.
func readJSONError(t *testing.T, br *bufio.Reader, status int, code string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	var ans errorAnswer
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &ans); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %q is not the JSON error: %v\n%s", resp.Status, resp.Header.Get("Content-Type"), err, body)
	}
	if resp.StatusCode != status || ans.Error.Code != code || ans.Error.Message == "" {
		t.Fatalf("%d %+v, want %d %s", resp.StatusCode, ans.Error, status, code)
	}
	return resp, ans.Error.Message
}

// A publish whose body stops coming is cut after --body-timeout with a
// 408 JSON error and the connection is closed, however the body was
// framed; a slow body that keeps coming is not cut.
func TestStalledBodyIsCut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := startEdge(t, transports.Config{MaxPayload: 16 << 20, BodyTimeout: timeout})
	publish := "POST /v1/publish?channel=stall HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	for _, tc := range []struct{ name, request string }{
		{"16 MiB announced, 10 bytes sent", publish + "Content-Length: 16777216\r\n\r\n0123456789"},
		{"no byte of the body", publish + "Content-Length: 100\r\n\r\n"},
		{"chunked, stalled in a chunk", publish + "Transfer-Encoding: chunked\r\n\r\n400\r\n0123456789"},
		{"chunked, stalled between chunks", publish + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			c, br := rawRequest(t, e, tc.request)
			resp, _ := readJSONError(t, br, http.StatusRequestTimeout, "request_timeout")
			if waited := time.Since(start); waited < timeout {
				t.Errorf("answered after %v, before the body timeout %v", waited, timeout)
			}
			if !resp.Close {
				t.Error("the connection is kept for another request after a cut body")
			}
			if n, err := br.Read(make([]byte, 1)); err == nil {
				t.Errorf("the connection stays open: read %d bytes", n)
			}
			c.Close()
		})
	}
	t.Run("over HTTP/2", func(t *testing.T) {
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		defer tr.CloseIdleConnections()
		body, w := io.Pipe()
		defer w.Close()
		go w.Write([]byte("0123456789")) // then nothing, until the test ends
		req, _ := http.NewRequest(http.MethodPost, e.url("/v1/publish", "channel", "stall"), body)
		req.ContentLength = 16 << 20
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ans errorAnswer
		decodeJSON(t, resp, &ans)
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout || ans.Error.Code != "request_timeout" {
			t.Fatalf("%s %d %+v, want HTTP/2 408 request_timeout", resp.Proto, resp.StatusCode, ans.Error)
		}
	})
	t.Run("slow body that keeps coming", func(t *testing.T) {
		// Ten bytes a quarter of the timeout apart: the whole body takes
		// 2.5 timeouts, no gap between bytes comes near one.
		c, br := rawRequest(t, e, publish+"Content-Length: 10\r\n\r\n")
		tick := time.NewTicker(timeout / 4)
		defer tick.Stop()
		for i := range 10 {
			<-tick.C
			if _, err := c.Write([]byte{'0' + byte(i)}); err != nil {
				t.Fatalf("byte %d: %v", i, err)
			}
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("a slow body that kept coming: %d", resp.StatusCode)
		}
	})
	t.Run("store slower than the body timeout", func(t *testing.T) {
		// Past the body the deadline is lifted: net/http's read that
		// watches for the client leaving would otherwise fail when it
		// fires and cancel the request while the message is stored.
		cfg := transports.Config{BodyTimeout: timeout}.WithDefaults()
		slow := startEdgeWith(t, cfg, slowStore{resume.NewMemory(resume.MemoryConfig{}), 3 * timeout})
		resp, err := http.Post(slow.url("/v1/publish", "channel", "slow"), "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("publish to a slow store: %d", resp.StatusCode)
		}
	})
}

// slowStore takes delay to store a message, unless the request is
// cancelled first.
type slowStore struct {
	edge.Broker
	delay time.Duration
}

func (s slowStore) Publish(ctx context.Context, channel, event string, data []byte) (edge.ID, error) {
	select {
	case <-ctx.Done():
		return edge.ID{}, ctx.Err()
	case <-time.After(s.delay):
	}
	return s.Broker.Publish(ctx, channel, event, data)
}

// A page of another site cannot publish through its visitor's browser:
// a POST whose Origin is neither the edge's own nor allowed by
// --cors-origin (or that says Sec-Fetch-Site: cross-site without one) is
// refused with 403 and nothing is stored, whatever its content type —
// forms and text/plain fetches need no preflight. Backends, which send
// no Origin, publish as before.
func TestCrossSitePublishRefused(t *testing.T) {
	plain := startEdge(t, transports.Config{})
	listed := startEdge(t, transports.Config{CORSOrigin: "https://app.example, https://other.example"})
	anyOrigin := startEdge(t, transports.Config{CORSOrigin: "*"})
	for i, tc := range []struct {
		name        string
		e           *testEdge
		contentType string
		header      http.Header
		status      int
	}{
		{"backend without Origin", plain, "application/octet-stream", nil, 200},
		{"same origin", plain, "text/plain", http.Header{"Origin": {plain.base}}, 200},
		{"same origin, Sec-Fetch-Site", plain, "text/plain", http.Header{"Origin": {plain.base}, "Sec-Fetch-Site": {"same-origin"}}, 200},
		{"other site, text/plain", plain, "text/plain", http.Header{"Origin": {"http://evil.example"}}, 403},
		{"other site, form", plain, "application/x-www-form-urlencoded", http.Header{"Origin": {"http://evil.example"}}, 403},
		{"other site, multipart", plain, "multipart/form-data; boundary=x", http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}, 403},
		{"opaque origin", plain, "text/plain", http.Header{"Origin": {"null"}}, 403},
		{"another port of the host", plain, "text/plain", http.Header{"Origin": {"http://127.0.0.1:1"}}, 403},
		{"cross-site without Origin", plain, "text/plain", http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403},
		{"same-site without Origin", plain, "text/plain", http.Header{"Sec-Fetch-Site": {"same-site"}}, 200},
		{"origin allowed by --cors-origin", listed, "text/plain", http.Header{"Origin": {"https://other.example"}, "Sec-Fetch-Site": {"cross-site"}}, 200},
		{"origin not in --cors-origin", listed, "text/plain", http.Header{"Origin": {"https://evil.example"}}, 403},
		{"cross-site without Origin, list", listed, "text/plain", http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403},
		{"any origin with --cors-origin *", anyOrigin, "text/plain", http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			channel := fmt.Sprintf("cross-%d", i)
			req, _ := http.NewRequest(http.MethodPost, tc.e.url("/v1/publish", "channel", channel), strings.NewReader("x=1"))
			req.Header.Set("Content-Type", tc.contentType)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			var ans errorAnswer
			status := doJSON(t, req, &ans)
			if status != tc.status || (tc.status == 403) != (ans.Error.Code == "forbidden") {
				t.Fatalf("%d %+v, want %d", status, ans.Error, tc.status)
			}
			var page struct{ Messages []wireMessage }
			getJSON(t, tc.e.url("/v1/history", "channel", channel), nil, &page)
			if stored := len(page.Messages) == 1; stored != (tc.status == 200) {
				t.Fatalf("%d messages stored after a %d", len(page.Messages), status)
			}
		})
	}
}

// Anonymous publishing from loopback needs the edge to be named by a
// loopback name or address or its --domain: a page that DNS rebinding
// pointed at 127.0.0.1 sends its own name as Host (and as Origin, so it
// passes same-origin checks) and is refused, over HTTP and over a
// WebSocket's publish op. Keys, tokens and --insecure-publish do not
// depend on the Host.
func TestDNSRebindingCannotPublish(t *testing.T) {
	open := startEdge(t, transports.Config{Domains: []string{"edge.example"}})
	insecure := startEdge(t, transports.Config{InsecurePublish: true})
	keyed := startEdge(t, transports.Config{PublishKeys: []string{"k1"}})
	port := open.base[strings.LastIndex(open.base, ":"):]
	for _, tc := range []struct {
		name, host string
		e          *testEdge
		key        string
		ok         bool
	}{
		{"127.0.0.1", "127.0.0.1" + port, open, "", true},
		{"127.0.0.1 without port", "127.0.0.1", open, "", true},
		{"another loopback address", "127.8.9.10" + port, open, "", true},
		{"::1", "[::1]" + port, open, "", true},
		{"::1 without port", "[::1]", open, "", true},
		{"IPv4-mapped loopback", "[::ffff:127.0.0.1]" + port, open, "", true},
		{"localhost", "localhost" + port, open, "", true},
		{"LOCALHOST.", "LOCALHOST." + port, open, "", true},
		{"a .localhost name", "app.localhost" + port, open, "", true},
		{"the --domain", "Edge.Example", open, "", true},
		{"rebound name", "evil.example" + port, open, "", false},
		{"rebound name without port", "evil.example", open, "", false},
		{"localhost as a label", "localhost.evil.example" + port, open, "", false},
		{"localhost suffix without a dot", "evillocalhost" + port, open, "", false},
		{"loopback address as a label", "127.0.0.1.nip.io" + port, open, "", false},
		{"sub-domain of the --domain", "x.edge.example", open, "", false},
		{"a public address", "203.0.113.7" + port, open, "", false},
		{"rebound name, --insecure-publish", "evil.example" + port, insecure, "", true},
		{"rebound name, publish key", "evil.example" + port, keyed, "k1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			channel := "rebind-" + strings.Map(func(r rune) rune {
				if strings.ContainsRune("abcdefghijklmnopqrstuvwxyz0123456789", r) {
					return r
				}
				return '-'
			}, strings.ToLower(tc.name))
			t.Run("HTTP", func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodPost, tc.e.url("/v1/publish", "channel", channel), strings.NewReader("x"))
				req.Host = tc.host
				// What a rebound page's browser sends: its own origin.
				req.Header.Set("Origin", "http://"+tc.host)
				if tc.key != "" {
					req.Header.Set("Authorization", "Bearer "+tc.key)
				}
				var ans errorAnswer
				status := doJSON(t, req, &ans)
				if (status == 200) != tc.ok || (!tc.ok && (status != 403 || !strings.Contains(ans.Error.Message, "loopback"))) {
					t.Fatalf("%d %+v, want ok %v (403 naming loopback otherwise)", status, ans.Error, tc.ok)
				}
			})
			if tc.key != "" {
				return // a WebSocket publishes with its token, not a publish key
			}
			t.Run("WebSocket", func(t *testing.T) {
				ws := dialWSHeader(t, tc.e.wsURL(), http.Header{"Host": {tc.host}, "Origin": {"http://" + tc.host}})
				ws.send(map[string]any{"op": "publish", "channel": channel, "data": "y", "ref": 1})
				f := ws.read()
				switch {
				case tc.ok && f.Type != "published":
					t.Fatalf("%+v, want published", f)
				case !tc.ok && (f.Type != "error" || f.Error.Code != "forbidden"):
					t.Fatalf("%+v, want a forbidden error", f)
				}
			})
		})
	}
}

// POST /v1/publish takes credentials from "Authorization: Bearer" only: a
// publish key or token in the edge_token cookie or in access_token= does
// not publish, with or without another Authorization header beside it,
// and an Authorization header of another scheme is a 401 — even where
// anonymous loopback publishing would have let the request through.
func TestPublishCredentialsFromBearerOnly(t *testing.T) {
	keyed := startEdge(t, transports.Config{PublishKeys: []string{"k1"}, JWTSecret: testSecret})
	open := startEdge(t, transports.Config{})
	tok := token(t, "backend", nil, []string{"*"}, time.Hour)
	for _, tc := range []struct {
		name          string
		e             *testEdge
		authorization string
		query         []string
		cookie        string
		status        int
	}{
		{"key in Bearer", keyed, "Bearer k1", nil, "", 200},
		{"token in Bearer", keyed, "Bearer " + tok, nil, "", 200},
		{"key in cookie", keyed, "", nil, "k1", 401},
		{"key in cookie beside Basic", keyed, "Basic x", nil, "k1", 401},
		{"token in cookie beside Basic", keyed, "Basic dXNlcjpwYXNz", nil, tok, 401},
		{"key in access_token", keyed, "", []string{"access_token", "k1"}, "", 401},
		{"key in access_token beside Basic", keyed, "Basic x", []string{"access_token", "k1"}, "", 401},
		{"token in access_token beside Basic", keyed, "Basic x", []string{"access_token", tok}, "", 401},
		{"Basic alone where loopback is open", open, "Basic x", nil, "", 401},
		{"Basic with a key in cookie where loopback is open", open, "Basic x", nil, "k1", 401},
		{"nothing where loopback is open", open, "", nil, "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, tc.e.url("/v1/publish", append([]string{"channel", "creds"}, tc.query...)...), strings.NewReader("x"))
			if tc.authorization != "" {
				req.Header.Set("Authorization", tc.authorization)
			}
			if tc.cookie != "" {
				req.Header.Set("Cookie", "edge_token="+tc.cookie)
			}
			var ans errorAnswer
			status := doJSON(t, req, &ans)
			if status != tc.status || (tc.status == 401) != (ans.Error.Code == "unauthorized") {
				t.Fatalf("%d %+v, want %d", status, ans.Error, tc.status)
			}
		})
	}
}

// The requests that net/http refuses itself, before any handler, are
// answered with the edge's JSON error and their status too, not with
// net/http's plain text.
func TestNetHTTPRefusalsAreJSON(t *testing.T) {
	e := startEdge(t, transports.Config{})
	const get = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	const post = "POST /v1/publish?channel=a HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	for _, tc := range []struct {
		name, request string
		status        int
		code, message string
	}{
		{"headers over the limit", get + "X-Big: " + strings.Repeat("a", 24<<10) + "\r\n\r\n", 431, "headers_too_large", "headers"},
		{"Content-Length not a number", post + "Content-Length: abc\r\n\r\nx", 400, "bad_request", "malformed"},
		{"two different Content-Lengths", post + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 400, "bad_request", "malformed"},
		{"negative Content-Length", post + "Content-Length: -5\r\n\r\n", 400, "bad_request", "malformed"},
		{"unknown Transfer-Encoding", post + "Transfer-Encoding: gzip\r\n\r\n", 501, "bad_request", "Transfer-Encoding"},
		{"no Host", "GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request", "Host"},
		{"header without a colon", get + "Bad Header Without Colon\r\n\r\n", 400, "bad_request", "malformed"},
		{"unknown HTTP version", "GET /healthz HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n", 505, "bad_request", "version"},
		{"unknown Expect", post + "Content-Length: 1\r\nExpect: 200-ok\r\n\r\nx", 417, "bad_request", "Expect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, br := rawRequest(t, e, tc.request)
			resp, message := readJSONError(t, br, tc.status, tc.code)
			if !strings.Contains(message, tc.message) {
				t.Errorf("message %q does not say %q", message, tc.message)
			}
			if !resp.Close {
				t.Error("the connection stays open after a malformed request")
			}
		})
	}
	t.Run("plain HTTP to the TLS port", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg := transports.Config{}.WithDefaults()
		useTLS := func(s *transports.Server) { s.UseTLS(&tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}, nil) }
		secure := serveOn(t, cfg, resume.NewMemory(resume.MemoryConfig{}), ln, transports.WithTelemetry(testTelemetry(t, nil)), useTLS)
		_, br := rawRequest(t, secure, get+"\r\n")
		if _, message := readJSONError(t, br, 400, "bad_request"); !strings.Contains(message, "https://") {
			t.Errorf("message %q does not say to use https://", message)
		}
	})
}

// selfSigned returns a certificate for 127.0.0.1.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// The request line and headers of a request may take 16 KiB, as the
// README says, and not a byte more, wherever the bytes are: over the
// limit a block is answered 431 with the JSON error, by net/http or by
// the edge's own count of what net/http let through.
func TestHeaderLimitIs16KiB(t *testing.T) {
	e := startEdge(t, transports.Config{})
	// head returns a request of exactly size bytes up to and including
	// the blank line, padded in the query or in headers.
	head := func(size, headers int, inQuery bool) string {
		var b strings.Builder
		b.WriteString("GET /healthz?pad= HTTP/1.1\r\nHost: 127.0.0.1\r\n")
		for i := range headers {
			fmt.Fprintf(&b, "X-Pad-%03d: \r\n", i)
		}
		pad := size - b.Len() - len("\r\n")
		if inQuery {
			return strings.Replace(b.String(), "pad=", "pad="+strings.Repeat("q", pad), 1) + "\r\n"
		}
		// The padding goes into the headers' values, spread evenly.
		var out strings.Builder
		out.WriteString("GET /healthz?pad= HTTP/1.1\r\nHost: 127.0.0.1\r\n")
		for i := range headers {
			n := pad / headers
			if i < pad%headers {
				n++
			}
			fmt.Fprintf(&out, "X-Pad-%03d: %s\r\n", i, strings.Repeat("h", n))
		}
		return out.String() + "\r\n"
	}
	for _, tc := range []struct {
		name    string
		size    int
		headers int
		inQuery bool
		status  int
	}{
		{"16 KiB in one header", 16 << 10, 1, false, 200},
		{"a byte more in one header", 16<<10 + 1, 1, false, 431},
		{"16 KiB in many headers", 16 << 10, 60, false, 200},
		{"a byte more in many headers", 16<<10 + 1, 60, false, 431},
		{"16 KiB with a long query", 16 << 10, 0, true, 200},
		{"a byte more in the query", 16<<10 + 1, 0, true, 431},
		{"16 bytes more", 16<<10 + 16, 1, false, 431},
		{"twice the limit", 32 << 10, 1, false, 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			request := head(tc.size, tc.headers, tc.inQuery)
			if len(request) != tc.size {
				t.Fatalf("the test's request has %d bytes, want %d", len(request), tc.size)
			}
			for _, kept := range []bool{false, true} {
				// Alone on a connection, and after another request on it
				// (net/http reads a connection's first bytes differently).
				first := ""
				if kept {
					first = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
				}
				_, br := rawRequest(t, e, first+request)
				if kept {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if tc.status != 200 {
					readJSONError(t, br, tc.status, "headers_too_large")
					continue
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("after another request %v: %d, want 200", kept, resp.StatusCode)
				}
			}
		})
	}
}

// Numeric and duration parameters outside their range are refused with a
// 400 that names the parameter and the range, never clamped: a client
// that asked for limit=5000 or heartbeat=1s and silently got something
// else could not tell. The bounds themselves are accepted.
func TestOutOfRangeParametersRefused(t *testing.T) {
	e := startEdge(t, transports.Config{})
	var start pollAnswer
	getJSON(t, e.url("/v1/subscribe", "channel", "r", "timeout", "0"), nil, &start)
	e.publish("r", "x")
	// poll answers at once: a message after start.Cursor is waiting.
	poll := func(q ...string) string {
		return e.url("/v1/subscribe", append([]string{"channel", "r", "since", start.Cursor}, q...)...)
	}
	history := func(q ...string) string { return e.url("/v1/history", append([]string{"channel", "r"}, q...)...) }
	sse := func(q ...string) string {
		return e.url("/v1/subscribe", append([]string{"channel", "r", "transport", "sse"}, q...)...)
	}
	for _, tc := range []struct {
		name, url string
		status    int
		message   string // the refusal names the parameter and its range
	}{
		{"history limit=0", history("limit", "0"), 400, "limit=0 is out of range; use 1 to 1000"},
		{"history limit=-5", history("limit", "-5"), 400, "limit=-5 is out of range; use 1 to 1000"},
		{"history limit=5000", history("limit", "5000"), 400, "limit=5000 is out of range; use 1 to 1000"},
		{"history limit past int64", history("limit", "99999999999999999999"), 400, "is out of range; use 1 to 1000"},
		{"history limit=1", history("limit", "1"), 200, ""},
		{"history limit=1000", history("limit", "1000"), 200, ""},
		{"poll limit=0", poll("limit", "0"), 400, "limit=0 is out of range; use 1 to 1000"},
		{"poll limit=1001", poll("limit", "1001"), 400, "limit=1001 is out of range; use 1 to 1000"},
		{"poll limit=1000", poll("limit", "1000"), 200, ""},
		{"timeout over --poll-timeout-max", poll("timeout", "61s"), 400, "timeout=61s is out of range; use 0s to 1m0s"},
		{"timeout in seconds over the max", poll("timeout", "61"), 400, "timeout=61 is out of range; use 0s to 1m0s"},
		{"huge timeout", poll("timeout", "1e300"), 400, "timeout=1e300 is out of range"},
		{"negative timeout", poll("timeout", "-1s"), 400, "timeout=-1s is out of range"},
		{"timeout at the max", poll("timeout", "60s"), 200, ""},
		{"timeout=0", poll("timeout", "0"), 200, ""},
		{"linger over --poll-linger-max", poll("linger", "6s"), 400, "linger=6s is out of range; use 0s to 5s"},
		{"negative linger", poll("linger", "-0.5"), 400, "linger=-0.5 is out of range; use 0s to 5s"},
		{"linger at the max", poll("linger", "5s", "timeout", "0"), 200, ""},
		{"heartbeat under the minimum", poll("heartbeat", "1s"), 400, "heartbeat=1s is out of range; use 5s to 5m0s"},
		{"heartbeat over the maximum", poll("heartbeat", "301"), 400, "heartbeat=301 is out of range; use 5s to 5m0s"},
		{"heartbeat at the bounds", poll("heartbeat", "5s"), 200, ""},
		{"padding over the maximum", sse("padding", "8193"), 400, "padding=8193 is out of range; use 0 to 8192"},
		{"negative padding", sse("padding", "-1"), 400, "padding=-1 is out of range; use 0 to 8192"},
		{"not a number", history("limit", "ten"), 400, `limit="ten" is not an integer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ans errorAnswer
			if st := getJSON(t, tc.url, nil, &ans); st != tc.status || !strings.Contains(ans.Error.Message, tc.message) {
				t.Fatalf("%d %+v, want %d saying %q", st, ans.Error, tc.status, tc.message)
			}
		})
	}
	t.Run("padding at the maximum", func(t *testing.T) {
		c := openSSE(t, sse("padding", "8192"), nil)
		if c.resp.StatusCode != 200 {
			t.Fatalf("%d", c.resp.StatusCode)
		}
	})
}

// A query pair that net/url would drop without a word — a malformed
// percent-escape, a semicolon — is a 400 that names the parameter as
// malformed, on every endpoint, rather than a parameter that silently is
// not there ("channel=a%ZZb" reported as an empty channel). Well-formed
// escapes keep working.
func TestMalformedQueryRefused(t *testing.T) {
	e := startEdge(t, transports.Config{})
	for _, tc := range []struct {
		name, method, target string
		status               int
		message              string
	}{
		{"publish channel", "POST", "/v1/publish?channel=a%ZZb", 400, `parameter "channel" is malformed: "%ZZ"`},
		{"publish event", "POST", "/v1/publish?channel=a&event=%G1", 400, `parameter "event" is malformed`},
		{"history channel", "GET", "/v1/history?channel=a%ZZb", 400, `parameter "channel" is malformed`},
		{"history since", "GET", "/v1/history?channel=a&since=1-0%", 400, `parameter "since" is malformed: "%"`},
		{"subscribe channel", "GET", "/v1/subscribe?channel=a%ZZb&timeout=0", 400, `parameter "channel" is malformed`},
		{"second channel", "GET", "/v1/subscribe?channel=a&channel=b%2&timeout=0", 400, `parameter "channel" is malformed: "%2"`},
		{"access_token", "GET", "/v1/subscribe?channel=a&timeout=0&access_token=%zz", 400, `parameter "access_token" is malformed`},
		{"limit", "GET", "/v1/history?channel=a&limit=1%0", 400, `parameter "limit" is malformed`},
		{"unknown parameter", "GET", "/v1/history?x=%zz&channel=a", 400, `parameter "x" is malformed`},
		{"malformed key", "GET", "/v1/history?chan%zzel=a&channel=a", 400, `parameter "chan%zzel" is malformed`},
		{"semicolon", "GET", "/v1/history?channel=a;b", 400, `parameter "channel" is malformed: it holds a semicolon`},
		{"well-formed escapes", "POST", "/v1/publish?channel=a%3Ab%2Fc&event=t%2Dick", 200, ""},
		{"escaped key", "GET", "/v1/history?chan%6Eel=a%3Ab%2Fc", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.method == "POST" {
				body = strings.NewReader("x")
			}
			req, err := http.NewRequest(tc.method, e.base+tc.target, body)
			if err != nil {
				t.Fatal(err)
			}
			var ans errorAnswer
			status := doJSON(t, req, &ans)
			if status != tc.status || !strings.Contains(ans.Error.Message, tc.message) {
				t.Fatalf("%d %+v, want %d saying %q", status, ans.Error, tc.status, tc.message)
			}
		})
	}
}

// A long-poll that waits is answered on its hijacked connection, which
// then serves the client's next request. A body sent with the poll is
// the poll's, never a request of its own: behind a proxy that reuses
// its connections to the edge, a body that became a request would let
// one client smuggle a request (from the proxy's address, say loopback)
// past the proxy.
func TestLongPollBodyIsNotARequest(t *testing.T) {
	e := startEdge(t, transports.Config{})
	smuggled := "POST /v1/publish?channel=smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"
	for _, tc := range []struct{ name, framing, body string }{
		{"Content-Length", fmt.Sprintf("Content-Length: %d\r\n", len(smuggled)), smuggled},
		{"chunked", "Transfer-Encoding: chunked\r\n", fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := rawRequest(t, e, "GET /v1/subscribe?channel=quiet&timeout=50ms HTTP/1.1\r\nHost: 127.0.0.1\r\n"+tc.framing+"\r\n"+tc.body)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			var poll pollAnswer
			decodeJSON(t, resp, &poll)
			resp.Body.Close()
			if resp.StatusCode != 200 || len(poll.Messages) != 0 {
				t.Fatalf("the poll: %d %+v", resp.StatusCode, poll)
			}
			// The next answer on the connection is the next request's.
			if resp.Close {
				return // or there is none
			}
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
			next, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer to the request after the poll: %v", err)
			}
			var health map[string]any
			decodeJSON(t, next, &health)
			next.Body.Close()
			if health["status"] != "ok" {
				t.Errorf("the answer after the poll is not /healthz's: %d %v", next.StatusCode, health)
			}
			var page struct{ Messages []wireMessage }
			getJSON(t, e.url("/v1/history", "channel", "smuggled"), nil, &page)
			if len(page.Messages) > 0 {
				t.Fatalf("the poll's body was served as a request: %q published", page.Messages[0].Data)
			}
		})
	}
}
