package edgetls

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/tls/certtest"
	"github.com/edgeworks/edge/tls/pebbletest"
)

// acmeNode is a Terminator in ACME mode against pebble, serving TLS on
// listen (usually Pebble's TLS-ALPN-01 port).
type acmeNode struct {
	term *Terminator
	addr string
	logs *logBuffer
}

func startACME(t *testing.T, pebble *pebbletest.Server, listen string, cfg Config) *acmeNode {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	logs := new(logBuffer)
	cfg.Mode, cfg.Listen, cfg.CA, cfg.CARoots = ACME, ln.Addr().String(), pebble.DirectoryURL(), pebble.ClientCAs()
	cfg.Email = "ops@edge.test"
	if cfg.StorageDir == "" && cfg.Redis == nil {
		cfg.StorageDir = lingeringDir(t)
	}
	cfg.Log = slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelWarn}))
	term, err := New(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(hello), ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(tls.NewListener(ln, term.TLSConfig()))
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
		term.Close()
	})
	return &acmeNode{term, ln.Addr().String(), logs}
}

// A certificate from a real ACME server (Pebble) over TLS-ALPN-01: the
// chain verifies against Pebble's root, and HTTP/2 is negotiated.
func TestACMEWithTLSALPN(t *testing.T) {
	pebble := pebbletest.Start(t, pebbletest.Options{})
	node := startACME(t, pebble, fmt.Sprintf("127.0.0.1:%d", pebble.TLSPort()), Config{Domains: []string{"edge.test"}})
	leaf := certtest.Verified(t, node.addr, "edge.test", pebble.IssuerRoots())
	if leaf.DNSNames[0] != "edge.test" {
		t.Fatalf("certificate for %v", leaf.DNSNames)
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{ServerName: "edge.test", RootCAs: pebble.IssuerRoots()},
		ForceAttemptHTTP2: true,
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + node.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("negotiated %s, want HTTP/2", resp.Proto)
	}
	if n := pebble.OrdersFor("edge.test"); n != 1 {
		t.Errorf("%d orders for edge.test, want 1", n)
	}
	if !strings.Contains(node.term.Summary(), "TLS-ALPN-01") {
		t.Errorf("summary %q", node.term.Summary())
	}
	if at, ok := node.term.Expiry(); !ok || !at.Equal(leaf.NotAfter) {
		t.Errorf("Expiry %v, %v; want the served certificate's %v", at, ok, leaf.NotAfter)
	}
}

// Over HTTP-01: the plain-HTTP handler answers the challenge on Pebble's
// HTTP port, and redirects the rest to https.
func TestACMEWithHTTP01(t *testing.T) {
	pebble := pebbletest.Start(t, pebbletest.Options{})
	httpAddr := fmt.Sprintf("127.0.0.1:%d", pebble.HTTPPort())
	httpLn, err := net.Listen("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	// Not Pebble's TLS-ALPN port: only HTTP-01 can succeed.
	node := startACME(t, pebble, "127.0.0.1:0", Config{Domains: []string{"plain.edge.test"}, HTTPListen: httpAddr})
	httpSrv := &http.Server{Handler: node.term.HTTPHandler("443")}
	done := make(chan struct{})
	go func() { defer close(done); httpSrv.Serve(httpLn) }()
	defer func() { httpSrv.Close(); <-done }()

	certtest.Verified(t, node.addr, "plain.edge.test", pebble.IssuerRoots())
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get("http://" + httpAddr + "/v1/history?channel=a")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://127.0.0.1/v1/history?channel=a" {
		t.Errorf("plain HTTP: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// On demand: an approved name gets a certificate at its first handshake;
// another is refused in the handshake without any ACME order.
func TestACMEOnDemand(t *testing.T) {
	pebble := pebbletest.Start(t, pebbletest.Options{})
	node := startACME(t, pebble, fmt.Sprintf("127.0.0.1:%d", pebble.TLSPort()), Config{
		OnDemand: true, OnDemandAllow: []string{"*.customers.test"},
	})
	leaf := certtest.Verified(t, node.addr, "shop.customers.test", pebble.IssuerRoots())
	if leaf.DNSNames[0] != "shop.customers.test" {
		t.Fatalf("certificate for %v", leaf.DNSNames)
	}
	orders := pebble.Orders()
	_, err := tls.Dial("tcp", node.addr, &tls.Config{ServerName: "evil.test", InsecureSkipVerify: true})
	if err == nil {
		t.Fatal("a handshake for an unapproved name succeeded")
	}
	if pebble.Orders() != orders || pebble.OrdersFor("evil.test") != 0 {
		t.Fatalf("an unapproved name made an ACME order (%d orders, was %d)", pebble.Orders(), orders)
	}
}

// A short-lived certificate is renewed before it expires, and the new one
// is served without a restart.
func TestACMERenewsShortLivedCertificates(t *testing.T) {
	// A renewal starts a tenth into the certificate's life and must be
	// served before its end: 90 s leaves a loaded machine (CI with other
	// suites on two cores) over a minute for the order.
	pebble := pebbletest.Start(t, pebbletest.Options{CertificateValidity: 90 * time.Second})
	node := startACME(t, pebble, fmt.Sprintf("127.0.0.1:%d", pebble.TLSPort()), Config{
		Domains: []string{"renew.edge.test"}, RenewCheckInterval: 200 * time.Millisecond, RenewalWindowRatio: 0.9,
	})
	first := certtest.Verified(t, node.addr, "renew.edge.test", pebble.IssuerRoots())
	if life := first.NotAfter.Sub(first.NotBefore); life > 2*time.Minute {
		t.Fatalf("certificate lifetime %v, want about 90s", life)
	}
	deadline := first.NotAfter.Add(-time.Second) // then it would be served expired
	for {
		leaf := certtest.Verified(t, node.addr, "renew.edge.test", pebble.IssuerRoots())
		if leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			if !leaf.NotAfter.After(first.NotAfter) {
				t.Fatalf("the renewed certificate expires %v, not after the first's %v", leaf.NotAfter, first.NotAfter)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not renewed; log:\n%s", node.logs.String())
		}
		time.Sleep(100 * time.Millisecond) // polling for an outside effect, not synchronisation
	}
	if n := pebble.OrdersFor("renew.edge.test"); n < 2 {
		t.Errorf("%d orders, want a renewal order", n)
	}
}

// A name the CA cannot validate (nothing answers its challenges here) is
// logged with what to fix.
func TestACMEFailedValidationNamesTheFix(t *testing.T) {
	pebble := pebbletest.Start(t, pebbletest.Options{})
	node := startACME(t, pebble, "127.0.0.1:0", Config{Domains: []string{"elsewhere.edge.test"}})
	waitFor(t, "the validation error in the log", func() bool { return strings.Contains(node.logs.String(), "could not validate") })
	if !strings.Contains(node.logs.String(), "point its DNS at this node") {
		t.Errorf("the log does not name the fix:\n%s", node.logs.String())
	}
}

// lingeringDir is a temporary directory for certmagic storage that a
// retry job may still write to (a lock) just after Close: certmagic does
// not let the caller wait for its background jobs. The cleanup removes it
// once that job is done.
func lingeringDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "edge-acme-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for err := os.RemoveAll(dir); err != nil; err = os.RemoveAll(dir) {
			if time.Now().After(deadline) {
				t.Errorf("removing %s: %v", dir, err)
				return
			}
			time.Sleep(10 * time.Millisecond) // polling an outside effect, not synchronisation
		}
	})
	return dir
}

// An unreachable CA is a clear log line naming the fix; the edge keeps
// serving.
func TestACMEUnreachableCA(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadCA := "https://" + ln.Addr().String() + "/dir"
	ln.Close()
	logs := new(logBuffer)
	term, err := New(Config{Mode: ACME, Listen: "127.0.0.1:0", Domains: []string{"down.edge.test"}, CA: deadCA, StorageDir: lingeringDir(t),
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	waitFor(t, "the error in the log", func() bool { return strings.Contains(logs.String(), "cannot reach the ACME CA at "+deadCA) })
	if !strings.Contains(logs.String(), "check --acme-ca") {
		t.Errorf("the log does not name the fix:\n%s", logs.String())
	}
	addr := serve(t, term, http.HandlerFunc(hello))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("the edge stopped serving: %v", err)
	}
	conn.Close()
}
