package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	edgetls "github.com/edgeworks/edge/tls"
)

// newTerminator sets up TLS as cfg says; with Redis, ACME state lives in
// the same Redis as history.
func newTerminator(cfg config, broker edge.Broker, log *slog.Logger) (*edgetls.Terminator, error) {
	tc := cfg.tlsConfig(log)
	if r, ok := broker.(*resume.Redis); ok {
		tc.Redis = r.Client()
	}
	if cfg.ACMECARoots != "" {
		pem, err := os.ReadFile(cfg.ACMECARoots)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca-roots: %w", err)
		}
		tc.CARoots = x509.NewCertPool()
		if !tc.CARoots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--acme-ca-roots %s: no PEM certificate in it", cfg.ACMECARoots)
		}
	}
	return edgetls.New(tc)
}

// serveHTTP serves the plain-HTTP side (ACME HTTP-01 challenges and
// redirects to https) on cfg.HTTPListen until stop is called.
func serveHTTP(cfg config, term *edgetls.Terminator, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return nil, err
	}
	_, httpsPort, _ := net.SplitHostPort(cfg.Listen)
	srv := &http.Server{
		Handler:           term.HTTPHandler(httpsPort),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			log.Error("plain HTTP server stopped", "err", err)
		}
	}, nil
}
