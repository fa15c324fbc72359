package edgetls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// fileSource serves the key pair in two PEM files and reloads it when
// either file changes; a pair that does not load keeps the previous one
// in service.
type fileSource struct {
	certFile, keyFile string
	log               *slog.Logger
	cert              atomic.Pointer[tls.Certificate]
	// stamp identifies the files' versions when cert was loaded, failed
	// the versions that did not load; only watch uses them after New.
	stamp, failed string
}

func newFileSource(certFile, keyFile string, log *slog.Logger) (*fileSource, error) {
	f := &fileSource{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := f.stat()
	if err != nil {
		return nil, err
	}
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	f.cert.Store(cert)
	f.stamp = stamp
	return f, nil
}

// stat identifies the files' current versions.
func (f *fileSource) stat() (string, error) {
	var stamp string
	for _, file := range []struct{ flag, path, what string }{
		{"--cert", f.certFile, "the certificate (PEM, leaf first, then intermediates)"},
		{"--key", f.keyFile, "the certificate's private key (PEM)"},
	} {
		info, err := os.Stat(file.path)
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("tls: %s %s does not exist; give the file with %s", file.flag, file.path, file.what)
		}
		if err != nil {
			return "", fmt.Errorf("tls: %s %s: %w", file.flag, file.path, err)
		}
		stamp += fmt.Sprintf("%d/%d;", info.Size(), info.ModTime().UnixNano())
	}
	return stamp, nil
}

func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: --cert %s with --key %s: %w; give a PEM certificate and the PEM private key that belongs to it", certFile, keyFile, err)
	}
	return &cert, nil
}

func (f *fileSource) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.cert.Load(), nil
}

// watch reloads the pair every interval when the files changed, until ctx
// is done.
func (f *fileSource) watch(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		stamp, err := f.stat()
		if err != nil {
			stamp = err.Error() // a missing file is reported once, too
		}
		if stamp == f.stamp || stamp == f.failed {
			continue
		}
		var cert *tls.Certificate
		if err == nil {
			cert, err = loadKeyPair(f.certFile, f.keyFile)
		}
		if err != nil {
			// Often the two files are replaced one after the other: the
			// next change is tried again; until then the loaded pair serves.
			f.log.Error("certificate files changed but do not load; still serving the loaded certificate", "err", err)
			f.failed = stamp
			continue
		}
		f.cert.Store(cert)
		f.stamp = stamp
		f.log.Info("certificate reloaded", "cert", f.certFile, "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
	}
}
