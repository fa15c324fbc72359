package edgetls

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeworks/edge/tls/certtest"
)

// serve serves h over TLS with t's configuration on a loopback port and
// returns the address.
func serve(tb testing.TB, term *Terminator, h http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(tls.NewListener(ln, term.TLSConfig()))
	}()
	tb.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// served returns the leaf certificate addr presents for serverName.
func served(tb testing.TB, addr, serverName string) *x509.Certificate {
	tb.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err != nil {
		tb.Fatalf("handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func quietLog(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func hello(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }

func TestSelfSignedServesHTTP2AndRefusesOldTLS(t *testing.T) {
	term, err := New(Config{Mode: SelfSigned, Listen: "127.0.0.1:0", Domains: []string{"dev.example"}, Log: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if !strings.Contains(term.Summary(), "self-signed") {
		t.Errorf("summary %q", term.Summary())
	}
	addr := serve(t, term, http.HandlerFunc(hello))
	leaf := served(t, addr, "dev.example")
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, name := range []string{"localhost", "127.0.0.1", "dev.example"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("the self-signed certificate does not cover %s: %v", name, err)
		}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(body) != "HTTP/2.0" {
		t.Fatalf("negotiated %s (handler saw %s), want HTTP/2", resp.Proto, body)
	}
	_, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Fatal("a TLS 1.1 client got through")
	}
	_, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}})
	if err == nil {
		t.Fatal("a TLS 1.2 client with only CBC suites got through")
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("a modern TLS 1.2 client: %v", err)
	}
	conn.Close()
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling an outside effect, not synchronisation
	}
}

func TestFilesReloadWhenChanged(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca := certtest.NewCA(t)
	ca.WriteFiles(t, certFile, keyFile, "first.example")
	var logs logBuffer
	term, err := New(Config{Mode: Files, CertFile: certFile, KeyFile: keyFile, ReloadInterval: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	addr := serve(t, term, http.HandlerFunc(hello))
	if cn := served(t, addr, "x").Subject.CommonName; cn != "first.example" {
		t.Fatalf("serving %s", cn)
	}

	ca.WriteFiles(t, certFile, keyFile, "second.example")
	waitFor(t, "the new certificate", func() bool { return served(t, addr, "x").Subject.CommonName == "second.example" })
	if at, ok := term.Expiry(); !ok || !at.Equal(served(t, addr, "x").NotAfter) {
		t.Errorf("Expiry %v, %v; want the served certificate's", at, ok)
	}

	certtest.Replace(t, keyFile, []byte("not a key"))
	waitFor(t, "the reload error in the log", func() bool { return strings.Contains(logs.String(), "do not load") })
	if cn := served(t, addr, "x").Subject.CommonName; cn != "second.example" {
		t.Fatalf("after a broken key file: serving %s, want the last good certificate", cn)
	}
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Errorf("the broken files were reported %d times, want once", n)
	}
}

func TestFilesErrorsNameTheFix(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca := certtest.NewCA(t)
	ca.WriteFiles(t, certFile, keyFile, "a.example")
	otherKey := filepath.Join(dir, "other.pem")
	ca.WriteFiles(t, filepath.Join(dir, "other-cert.pem"), otherKey, "b.example")
	for _, tc := range []struct {
		cert, key string
		want      []string
	}{
		{certFile, filepath.Join(dir, "missing.pem"), []string{"--key", "missing.pem", "does not exist", "private key"}},
		{filepath.Join(dir, "nope.pem"), keyFile, []string{"--cert", "nope.pem", "does not exist"}},
		{certFile, otherKey, []string{"--cert", "--key", "belongs to it"}},
	} {
		_, err := New(Config{Mode: Files, CertFile: tc.cert, KeyFile: tc.key, Log: quietLog(t)})
		if err == nil {
			t.Fatalf("%s + %s: no error", tc.cert, tc.key)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %q", err, w)
			}
		}
	}
	if _, err := New(Config{Mode: "tls13-please"}); err == nil || !strings.Contains(err.Error(), "off, self-signed, files or acme") {
		t.Errorf("unknown mode: %v", err)
	}
}

func TestHTTPHandlerRedirectsToHTTPS(t *testing.T) {
	term, err := New(Config{Mode: SelfSigned, Log: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	for port, want := range map[string]string{"443": "https://edge.example/v1/history?channel=a", "8443": "https://edge.example:8443/v1/history?channel=a"} {
		r, _ := http.NewRequest(http.MethodGet, "http://edge.example:80/v1/history?channel=a", nil)
		r.Host = "edge.example:80"
		w := &recorder{header: http.Header{}}
		term.HTTPHandler(port).ServeHTTP(w, r)
		if w.status != http.StatusPermanentRedirect || w.header.Get("Location") != want {
			t.Errorf("port %s: %d to %q, want 308 to %q", port, w.status, w.header.Get("Location"), want)
		}
	}
}

type recorder struct {
	header http.Header
	status int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) WriteHeader(status int)      { r.status = status }

func TestMatchName(t *testing.T) {
	patterns := []string{"edge.example", "*.customers.example"}
	for name, want := range map[string]bool{
		"edge.example": true, "EDGE.example.": true, "a.customers.example": true,
		"customers.example": false, "a.b.customers.example": false, "evil.example": false,
		"edge.example.evil": false, ".customers.example": false,
	} {
		if got := MatchName(patterns, name); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

func TestApproverAsksAndLimits(t *testing.T) {
	var asked []string
	var mu sync.Mutex
	ask := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Query().Get("domain"))
		mu.Unlock()
		if strings.HasSuffix(r.URL.Query().Get("domain"), ".yes.example") {
			return
		}
		w.WriteHeader(http.StatusForbidden)
	})}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go ask.Serve(ln)
	defer ask.Close()
	a := newApprover(Config{OnDemandAllow: []string{"listed.example"}, OnDemandAsk: "http://" + ln.Addr().String() + "/ask", OnDemandRate: 2})
	ctx := t.Context()
	if err := a.decide(ctx, "listed.example"); err != nil {
		t.Errorf("listed: %v", err)
	}
	if err := a.decide(ctx, "a.yes.example"); err != nil {
		t.Errorf("approved by the ask URL: %v", err)
	}
	if err := a.decide(ctx, "b.no.example"); err == nil || !strings.Contains(err.Error(), "not an approved name") {
		t.Errorf("refused by the ask URL: %v", err)
	}
	if err := a.decide(ctx, "c.yes.example"); err == nil || !strings.Contains(err.Error(), "a minute") {
		t.Errorf("third approval within a minute at 2/min: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(asked, ",") != "a.yes.example,b.no.example,c.yes.example" {
		t.Errorf("asked about %q (a listed name needs no question)", asked)
	}
}
