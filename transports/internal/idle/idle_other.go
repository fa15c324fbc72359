//go:build !linux

package idle

import (
	"errors"
	"syscall"
)

// Watcher would watch parked connections; here it watches none, and
// callers keep a goroutine reading each connection. The zero value is
// ready to use.
type Watcher struct{}

// Handle is a connection added to a Watcher; none exists here.
type Handle struct{}

// Add returns nil: nothing can be parked here.
func (*Watcher) Add(syscall.RawConn, func()) *Handle { return nil }

// Parked returns 0: nothing is parked here.
func (*Watcher) Parked() int { return 0 }

// Wait returns at once: the watcher has no goroutine.
func (*Watcher) Wait() {}

// Park fails: nothing can be parked here.
func (*Handle) Park() error { return errors.New("idle: parking needs Linux") }

// Remove does nothing.
func (*Handle) Remove() {}
