//go:build !linux

package main

import "syscall"

// bindNoPort is the Control function of the subscribers' dialers; only
// Linux has IP_BIND_ADDRESS_NO_PORT (see sys_linux.go), so here it does
// nothing.
func bindNoPort(_, _ string, _ syscall.RawConn) error { return nil }

// workerSysProcAttr returns nil: only Linux kills a child with its parent
// (Pdeathsig). Elsewhere a worker stops when its stdin ends before the
// published line, and otherwise after its drain.
func workerSysProcAttr() *syscall.SysProcAttr { return nil }
