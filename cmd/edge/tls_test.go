package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/resume/redistest"
	"github.com/edgeworks/edge/tls/certtest"
	"github.com/edgeworks/edge/tls/pebbletest"
)

// checkTLSNode checks an edge serving https at base with a certificate
// roots verify: SSE over HTTP/2, publishing, and a WebSocket over
// HTTP/1.1 (wss) all work, and answers carry HSTS.
func checkTLSNode(t *testing.T, base string, roots *x509.CertPool) {
	t.Helper()
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("base %q is not https", base)
	}
	tlsConfig := &tls.Config{RootCAs: roots}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig.Clone(), ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/subscribe?channel=secure", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("SSE over TLS: %v", err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("SSE negotiated %s, want HTTP/2", resp.Proto)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=3600" {
		t.Errorf("Strict-Transport-Security %q", got)
	}
	events := bufio.NewReader(resp.Body)
	readLine := func(prefix string) string {
		t.Helper()
		for {
			line, err := events.ReadString('\n')
			if err != nil {
				t.Fatalf("SSE: %v", err)
			}
			if strings.HasPrefix(line, prefix) {
				return strings.TrimSpace(line[len(prefix):])
			}
		}
	}
	readLine("id: ") // live from here

	wsURL := "wss" + strings.TrimPrefix(base, "https") + "/v1/subscribe?channel=secure"
	ws, wsResp, err := (&websocket.Dialer{TLSClientConfig: tlsConfig, HandshakeTimeout: 10 * time.Second}).DialContext(ctx, wsURL, nil)
	if err != nil {
		t.Fatalf("wss: %v", err)
	}
	defer ws.Close()
	if wsResp.ProtoMajor != 1 {
		t.Errorf("WebSocket over %s, want HTTP/1.1", wsResp.Proto)
	}
	var sub struct{ Type string }
	if err := ws.ReadJSON(&sub); err != nil || sub.Type != "subscribed" {
		t.Fatalf("wss: %v %+v", err, sub)
	}

	pub, err := client.Post(base+"/v1/publish?channel=secure", "text/plain", strings.NewReader("over tls"))
	if err != nil || pub.StatusCode != 200 {
		t.Fatalf("publish over TLS: %v %v", err, pub)
	}
	pub.Body.Close()
	if got := readLine("data: "); got != "over tls" {
		t.Errorf("SSE got %q", got)
	}
	var m struct{ Data string }
	if err := ws.ReadJSON(&m); err != nil || m.Data != "over tls" {
		t.Errorf("wss got %+v, %v", m, err)
	}
}

// go run ./cmd/edge --tls self-signed serves https with a generated
// certificate and says so.
func TestSelfSignedBinary(t *testing.T) {
	base, banner := startNodeBanner(t, buildEdge(t), "--tls", "self-signed", "--hsts", "1h")
	if !strings.Contains(banner, "self-signed certificate (SHA-256") {
		t.Errorf("the banner does not say the certificate is self-signed:\n%s", banner)
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	checkTLSNode(t, base, roots)

	// /metrics says when the certificate expires.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^edge_tls_certificate_expiry_seconds ([0-9.e+]+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no edge_tls_certificate_expiry_seconds in /metrics:\n%s", body)
	}
	left, _ := strconv.ParseFloat(string(m[1]), 64)
	if want := time.Until(leaf.NotAfter).Seconds(); left < want-60 || left > want+60 {
		t.Errorf("edge_tls_certificate_expiry_seconds %v, want about %v", left, want)
	}
}

func TestFilesBinary(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca := certtest.NewCA(t)
	ca.WriteFiles(t, certFile, keyFile, "127.0.0.1")
	base, _ := startNodeBanner(t, buildEdge(t), "--tls", "files", "--cert", certFile, "--key", keyFile, "--hsts", "1h")
	checkTLSNode(t, base, ca.Pool())
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--tls", "files"}, 2, `tls: "files" needs --cert and --key`},
		{[]string{"--tls", "files", "--cert", filepath.Join(dir, "c.pem"), "--key", filepath.Join(dir, "k.pem")}, 2, "does not exist"},
		{[]string{"--tls", "acme"}, 2, `tls: "acme" needs --domain`},
		{[]string{"--tls", "acme", "--on-demand"}, 2, "on-demand: needs --on-demand-allow or --on-demand-ask"},
		{[]string{"--tls", "quantum"}, 2, `tls: "quantum" is not a mode; use off, self-signed, files or acme`},
		{[]string{"--http-listen", ":80"}, 2, "http-listen: only used with TLS"},
	} {
		var out strings.Builder
		code := run(context.Background(), append([]string{"--listen", "127.0.0.1:0"}, tc.args...), func(string) string { return "" }, &out, &out)
		if code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%q: code %d, output %q; want %d and %q", tc.args, code, out.String(), tc.code, tc.want)
		}
	}
}

// Two edge processes on one Redis with --tls acme: the fleet places one
// ACME order for the name, and both nodes serve the same certificate,
// although only one of them can answer the CA's challenge.
func TestTwoProcessesShareACMECertificates(t *testing.T) {
	rdb := redistest.Start(t)
	// Built first: the TLS port Pebble picks is free when it starts, but
	// nothing holds it until the first node listens on it, and a build
	// under load would leave it to anyone for seconds.
	bin := buildEdge(t)
	pebble := pebbletest.Start(t, pebbletest.Options{})
	roots := filepath.Join(t.TempDir(), "pebble-roots.pem")
	if err := os.WriteFile(roots, pebble.ClientCAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--redis", rdb.URL(), "--tls", "acme", "--domain", "fleet.edge.test", "--email", "ops@edge.test",
		"--acme-ca", pebble.DirectoryURL(), "--acme-ca-roots", roots}
	a, _ := startNodeBanner(t, bin, append(args, "--listen", fmt.Sprintf("127.0.0.1:%d", pebble.TLSPort()))...)
	b, banner := startNodeBanner(t, bin, args...)
	if !strings.Contains(banner, "storage: Redis, shared by the fleet") {
		t.Errorf("the banner does not say certificates live in Redis:\n%s", banner)
	}
	leafA := certtest.Verified(t, strings.TrimPrefix(a, "https://"), "fleet.edge.test", pebble.IssuerRoots())
	leafB := certtest.Verified(t, strings.TrimPrefix(b, "https://"), "fleet.edge.test", pebble.IssuerRoots())
	if leafA.SerialNumber.Cmp(leafB.SerialNumber) != 0 {
		t.Errorf("the nodes serve different certificates: %v and %v", leafA.SerialNumber, leafB.SerialNumber)
	}
	if n := pebble.OrdersFor("fleet.edge.test"); n != 1 {
		t.Errorf("%d ACME orders for the name, want 1 for the fleet", n)
	}
}
