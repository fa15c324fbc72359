//go:build !linux

package main

import "syscall"

// bindNoPort is the Control function of the subscribers' dialers; only
// Linux has IP_BIND_ADDRESS_NO_PORT (see sys_linux.go), so here it does
// nothing.
func bindNoPort(_, _ string, _ syscall.RawConn) error { return nil }
