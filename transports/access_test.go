package transports_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

const testSecret = "test-secret-with-enough-bytes-32!"

// token signs claims with testSecret (HS256); exp is from now.
func token(t *testing.T, sub string, channels, publish []string, exp time.Duration) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(exp).Unix()}
	if channels != nil {
		claims["channels"] = channels
	}
	if publish != nil {
		claims["publish"] = publish
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// status does a GET (a long-poll that answers at once) with header and
// returns the status and error code.
func status(t *testing.T, u string, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	var e errorAnswer
	return doJSON(t, req, &e), e.Error.Code
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// With a JWT key, channels need a token that names them, except
// anonymous ones; every kind of bad token is refused.
func TestSubscribeNeedsATokenUnlessAnonymous(t *testing.T) {
	e := startEdge(t, transports.Config{JWTSecret: testSecret, Anonymous: []string{"public:*"}})
	user42 := token(t, "42", []string{"user:42:*"}, nil, time.Hour)
	expired := token(t, "42", []string{"user:42:*"}, nil, -time.Hour)
	notYet, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "42", "channels": []string{"user:42:*"},
		"nbf": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(testSecret))
	wrongKey, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "42", "channels": []string{"*"}}).SignedString([]byte("another-secret-another-secret-xx"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "42", "channels": []string{"*"}}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	poll := func(ch string, extra ...string) string {
		return e.url("/v1/subscribe", append([]string{"channel", ch, "timeout", "0"}, extra...)...)
	}
	for _, tc := range []struct {
		name   string
		url    string
		header http.Header
		status int
		code   string
	}{
		{"anonymous channel", poll("public:news"), nil, 200, ""},
		{"no token", poll("user:42:inbox"), nil, 401, "unauthorized"},
		{"own channel", poll("user:42:inbox"), bearer(user42), 200, ""},
		{"other user's channel", poll("user:43:x"), bearer(user42), 403, "forbidden"},
		{"access_token parameter", poll("user:42:inbox", "access_token", user42), nil, 200, ""},
		{"cookie", poll("user:42:inbox"), http.Header{"Cookie": {"edge_token=" + user42}}, 200, ""},
		{"expired", poll("user:42:inbox"), bearer(expired), 401, "unauthorized"},
		{"not yet valid", poll("user:42:inbox"), bearer(notYet), 401, "unauthorized"},
		{"wrongly signed", poll("user:42:inbox"), bearer(wrongKey), 401, "unauthorized"},
		{"alg none", poll("user:42:inbox"), bearer(none), 401, "unauthorized"},
		{"garbage", poll("user:42:inbox"), bearer("not.a.token"), 401, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st, code := status(t, tc.url, tc.header); st != tc.status || code != tc.code {
				t.Fatalf("%d %q, want %d %q", st, code, tc.status, tc.code)
			}
		})
	}
	// Over WebSocket, a subscribe op is checked against the connection's token.
	c := dialWSHeader(t, e.wsURL(), bearer(user42))
	c.send(map[string]any{"op": "subscribe", "channel": "user:43:x", "ref": 1})
	if f := c.readControl("error"); f.Error.Code != "forbidden" {
		t.Fatalf("%+v", f)
	}
	c.send(map[string]any{"op": "subscribe", "channel": "user:42:x", "ref": 2})
	c.readControl("subscribed")
}

// With --jwt-audience and --jwt-issuer, a token minted for another service
// or by another issuer is refused everywhere a token is read, with a
// message that says which claim is wrong.
func TestTokenAudienceAndIssuer(t *testing.T) {
	e := startEdge(t, transports.Config{JWTSecret: testSecret, JWTAudiences: []string{"edge"}, JWTIssuer: "https://id.example"})
	mint := func(aud, iss string) string {
		claims := jwt.MapClaims{"sub": "42", "channels": []string{"user:42:*"}, "publish": []string{"user:42:*"},
			"exp": time.Now().Add(time.Hour).Unix(), "aud": aud, "iss": iss}
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name, token string
		status      int
		message     string
	}{
		{"for the edge", mint("edge", "https://id.example"), 200, ""},
		{"for another service", mint("billing", "https://id.example"), 401, "aud claim"},
		{"from another issuer", mint("edge", "https://evil.example"), 401, "iss claim"},
		{"a plain token", token(t, "42", []string{"user:42:*"}, []string{"user:42:*"}, time.Hour), 401, "no aud claim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range []*httptest.ResponseRecorder{
				serveFrom(e, "203.0.113.7:4000", httptest.NewRequest(http.MethodGet, "/v1/subscribe?channel=user:42:in&timeout=0&access_token="+tc.token, nil)),
				serveFrom(e, "203.0.113.7:4000", publishReq("user:42:out", tc.token)),
			} {
				var ea errorAnswer
				json.Unmarshal(w.Body.Bytes(), &ea)
				if w.Code != tc.status || !strings.Contains(ea.Error.Message, tc.message) {
					t.Errorf("%d %s, want %d and a message saying %q", w.Code, w.Body, tc.status, tc.message)
				}
			}
			if tc.status == 200 {
				c := dialWSHeader(t, e.wsURL("channel", "user:42:in"), bearer(tc.token))
				c.readControl("subscribed")
				return
			}
			_, resp, err := websocket.DefaultDialer.Dial(e.wsURL("channel", "user:42:in", "access_token", tc.token), nil)
			if err == nil || resp == nil || resp.StatusCode != tc.status {
				t.Errorf("WebSocket handshake: %v, %v; want status %d", resp, err, tc.status)
			}
		})
	}
}

// dialWSHeader dials with request headers.
func dialWSHeader(t *testing.T, u string, header http.Header) *wsClient {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(u, header)
	if err != nil {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", u, err, st)
	}
	t.Cleanup(func() { conn.Close() })
	return &wsClient{t: t, conn: conn}
}

// A stream whose token expires is closed with token_expired; a WebSocket
// that refreshes its token in time stays.
func TestTokenExpiryAndRefresh(t *testing.T) {
	e := startEdge(t, transports.Config{JWTSecret: testSecret})
	short := token(t, "7", []string{"c"}, nil, 1500*time.Millisecond)

	sse := openSSE(t, e.url("/v1/subscribe", "channel", "c", "access_token", short), nil)
	if ev := sse.next(); ev.Event != "disconnect" || !strings.Contains(ev.Data, `"code":4005`) || !strings.Contains(ev.Data, "token_expired") {
		t.Fatalf("SSE: %+v", ev)
	}

	// Each part gets its own token: exp is in whole seconds, and the SSE
	// part above used up the first.
	ws := dialWSHeader(t, e.wsURL("channel", "c"), bearer(token(t, "7", []string{"c"}, nil, 3*time.Second)))
	ws.readControl("subscribed")
	if f := ws.readControl("disconnect"); f.Code != 4005 || f.Reason != "token_expired" {
		t.Fatalf("WS: %+v", f)
	}

	oldExpiry := time.Now().Add(3 * time.Second)
	fresh := dialWSHeader(t, e.wsURL("channel", "c"), bearer(token(t, "7", []string{"c"}, nil, 3*time.Second)))
	fresh.readControl("subscribed")
	fresh.send(map[string]any{"op": "refresh", "token": token(t, "8", []string{"c"}, nil, time.Hour), "ref": 1})
	if f := fresh.readControl("error"); f.Error.Code != "forbidden" {
		t.Fatalf("refresh for another subject: %+v", f)
	}
	fresh.send(map[string]any{"op": "refresh", "token": token(t, "7", []string{"c"}, nil, time.Hour), "ref": 2})
	fresh.readControl("refreshed")
	// Past the first token's expiry the connection keeps delivering.
	for i := 0; time.Now().Before(oldExpiry.Add(time.Second)); i++ {
		e.publish("c", strconv.Itoa(i))
		if m := fresh.readMessages(1); m[0].Data != strconv.Itoa(i) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
}

// serveFrom serves one request through the edge's handler as if it came
// from addr.
func serveFrom(e *testEdge, addr string, r *http.Request) *httptest.ResponseRecorder {
	r.RemoteAddr = addr
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, r)
	return w
}

// publishReq is a publish to channel, with auth as its Bearer token
// unless empty, addressed to the edge as a backend on its host does.
func publishReq(channel, auth string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/publish?channel="+channel, strings.NewReader("x"))
	r.Host = "127.0.0.1:8080"
	if auth != "" {
		r.Header.Set("Authorization", "Bearer "+auth)
	}
	return r
}

// Who may publish: loopback without keys; keys from anywhere; tokens with
// a publish right; anyone with --insecure-publish.
func TestPublishRights(t *testing.T) {
	const remote, local = "203.0.113.7:4000", "127.0.0.1:4000"
	open := startEdge(t, transports.Config{})
	if w := serveFrom(open, local, publishReq("a", "")); w.Code != 200 {
		t.Errorf("loopback without keys: %d", w.Code)
	}
	if w := serveFrom(open, remote, publishReq("a", "")); w.Code != 403 || !strings.Contains(w.Body.String(), "--publish-key") {
		t.Errorf("remote without keys: %d %s", w.Code, w.Body)
	}
	insecure := startEdge(t, transports.Config{InsecurePublish: true})
	if w := serveFrom(insecure, remote, publishReq("a", "")); w.Code != 200 {
		t.Errorf("remote with --insecure-publish: %d", w.Code)
	}
	keyed := startEdge(t, transports.Config{PublishKeys: []string{"k1"}, JWTSecret: testSecret})
	news := token(t, "backend", nil, []string{"news:*"}, time.Hour)
	for _, tc := range []struct {
		name, from, channel, auth string
		status                    int
	}{
		{"loopback, no key", local, "a", "", 401},
		{"remote key", remote, "a", "k1", 200},
		{"token with the right", remote, "news:eu", news, 200},
		{"token without it", remote, "sports", news, 403},
		{"subscribe-only token", remote, "news:eu", token(t, "u", []string{"*"}, nil, time.Hour), 403},
	} {
		if w := serveFrom(keyed, tc.from, publishReq(tc.channel, tc.auth)); w.Code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Body, tc.status)
		}
	}
}

// Browsers on other sites cannot open WebSockets (cross-site WebSocket
// hijacking) nor read SSE or long-polls: both default to same-origin.
func TestSameOriginByDefault(t *testing.T) {
	e := startEdge(t, transports.Config{})
	_, resp, err := websocket.DefaultDialer.Dial(e.wsURL("channel", "a"), http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("cross-site WebSocket: %v", err)
	}
	for _, origin := range []string{e.base, ""} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		conn, _, err := websocket.DefaultDialer.Dial(e.wsURL("channel", "a"), h)
		if err != nil {
			t.Fatalf("Origin %q: %v", origin, err)
		}
		conn.Close()
	}
	req, _ := http.NewRequest(http.MethodGet, e.url("/v1/subscribe", "channel", "a", "timeout", "0"), nil)
	req.Header.Set("Origin", "https://evil.example")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("a foreign origin may read long-polls: %q", got)
	}
}

// Rates: subscribe and publish ops per WebSocket, publishes per publisher
// over HTTP, subscribe requests per address — each refused with a clear
// answer (429 and Retry-After over HTTP).
func TestRateLimits(t *testing.T) {
	e := startEdge(t, transports.Config{SubscribeRate: 2, ClientPublishRate: 2, PublishRate: 3})
	c := dialWS(t, e.wsURL())
	for i := range 3 {
		c.send(map[string]any{"op": "subscribe", "channel": "s" + strconv.Itoa(i), "ref": i})
	}
	c.readControl("subscribed")
	c.readControl("subscribed")
	if f := c.readControl("error"); f.Error.Code != "rate_limited" {
		t.Fatalf("third subscribe op: %+v", f)
	}
	for i := range 3 {
		c.send(map[string]any{"op": "publish", "channel": "p", "data": "x", "ref": 10 + i})
	}
	c.readControl("published")
	c.readControl("published")
	if f := c.readControl("error"); f.Error.Code != "rate_limited" {
		t.Fatalf("third publish op: %+v", f)
	}

	var last *httptest.ResponseRecorder
	for range 4 {
		last = serveFrom(e, "127.0.0.1:5000", publishReq("p", ""))
	}
	if last.Code != 429 || last.Header().Get("Retry-After") == "" || !strings.Contains(last.Body.String(), "rate_limited") {
		t.Fatalf("fourth publish in a second: %d %q %s", last.Code, last.Header().Get("Retry-After"), last.Body)
	}
	if w := serveFrom(e, "127.0.0.2:5000", publishReq("p", "")); w.Code != 200 {
		t.Fatalf("another publisher is limited too: %d", w.Code)
	}
	// Streams on one connection: HTTP/2 carries many.
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	var codes []int
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, e.url("/v1/subscribe", "channel", "h2", "transport", "sse"), nil)
		resp, err := h2.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 2 {
			t.Fatalf("not HTTP/2: %s", resp.Proto)
		}
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		defer resp.Body.Close()
	}
	if fmt.Sprint(codes) != "[200 200 429]" {
		t.Fatalf("three SSE streams on one connection at 2 a second: %v", codes)
	}
}

// Connections over the per-address limit are answered 429 and closed;
// a freed place can be taken again.
func TestConnectionLimitPerAddress(t *testing.T) {
	e := startEdge(t, transports.Config{MaxConnsPerIP: 2})
	addr := strings.TrimPrefix(e.base, "http://")
	var held []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		held = append(held, conn)
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if !strings.HasPrefix(line, "HTTP/1.1 429") {
		t.Fatalf("third connection: %q", line)
	}
	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(e.url("/healthz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no place after one was freed: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling for the freed place, not synchronisation
	}
}

// A token in a cookie or in access_token= does not publish: another
// site's form could otherwise publish as its visitor.
func TestPublishIgnoresCookieTokens(t *testing.T) {
	e := startEdge(t, transports.Config{JWTSecret: testSecret, PublishKeys: []string{"k"}})
	tok := token(t, "u", nil, []string{"*"}, time.Hour)
	r := publishReq("a", "")
	r.Header.Set("Cookie", "edge_token="+tok)
	if w := serveFrom(e, "203.0.113.7:1", r); w.Code != 401 {
		t.Fatalf("cookie token: %d", w.Code)
	}
	r = httptest.NewRequest(http.MethodPost, "/v1/publish?channel=a&access_token="+tok, strings.NewReader("x"))
	if w := serveFrom(e, "203.0.113.7:1", r); w.Code != 401 {
		t.Fatalf("access_token token: %d", w.Code)
	}
	if w := serveFrom(e, "203.0.113.7:1", publishReq("a", tok)); w.Code != 200 {
		t.Fatalf("bearer token: %d", w.Code)
	}
}

// Refused credentials are counted (/healthz, /metrics) and logged with the
// reason, the address and the request id, never with the token, the
// secret or a publish key.
func TestAuthFailuresAreLoggedWithoutSecrets(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := transports.Config{JWTSecret: testSecret, PublishKeys: []string{"publish-key-9f8e7d"}}.WithDefaults()
	srv, err := transports.New(cfg, resume.NewMemory(resume.MemoryConfig{}), log, transports.WithTelemetry(testTelemetry(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	expired := token(t, "42", []string{"*"}, nil, -time.Hour)
	const proxyID = "from-the-proxy.7"

	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "42"}).SignedString([]byte("forged-secret-forged-secret-forged"))
	for _, tok := range []string{expired, forged, "publish-key-wrong"} {
		for _, r := range []*http.Request{
			httptest.NewRequest(http.MethodGet, "/v1/subscribe?channel=a&timeout=0&access_token="+tok, nil),
			publishReq("a", tok),
		} {
			r.Header.Set("X-Request-Id", proxyID)
			w := httptest.NewRecorder()
			srv.Handler().ServeHTTP(w, r)
			if w.Code != 401 && w.Code != 403 {
				t.Fatalf("%s: %d", r.URL, w.Code)
			}
			if got := w.Header().Get("X-Request-Id"); got != proxyID {
				t.Fatalf("X-Request-Id %q, want the proxy's %q", got, proxyID)
			}
			if strings.Contains(w.Body.String(), tok) {
				t.Fatalf("the answer quotes the token: %s", w.Body)
			}
		}
	}
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	var health struct {
		AuthRefusals int64 `json:"auth_refusals"`
	}
	json.Unmarshal(w.Body.Bytes(), &health)
	if health.AuthRefusals < 6 {
		t.Errorf("auth_refusals %d, want at least 6", health.AuthRefusals)
	}
	w = httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if m := regexp.MustCompile(`(?m)^edge_auth_refusals_total (\d+)$`).FindStringSubmatch(w.Body.String()); m == nil || m[1] != strconv.FormatInt(health.AuthRefusals, 10) {
		t.Errorf("edge_auth_refusals_total %v, want %d", m, health.AuthRefusals)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "credentials refused") || !strings.Contains(logs.String(), "request_id="+proxyID) {
		t.Errorf("no log line about refused credentials with the request id:\n%s", logs.String())
	}
	for _, secret := range []string{expired, forged, testSecret, "publish-key-9f8e7d", "publish-key-wrong"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the log holds a secret %q:\n%s", secret, logs.String())
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
