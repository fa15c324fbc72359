package main

import "syscall"

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT of <linux/in.h> (Linux
// 4.2 and later); package syscall does not name it.
const ipBindAddressNoPort = 24

// bindNoPort is the Control function of the subscribers' dialers. Their
// sockets are bound to a source address, and bind with port 0 must find a
// port that no socket on that address holds, TIME_WAIT ones included: after
// a run of 15,000 subscribers that search took edge-bench a core and cut
// the next ramp to a few hundred connections/s. IP_BIND_ADDRESS_NO_PORT
// defers the choice to connect, which needs only the four-tuple to be
// unique and may reuse a loopback TIME_WAIT port (net.ipv4.tcp_tw_reuse).
// It is best effort: where the option is refused, bind picks the port as
// before.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
}

// workerSysProcAttr has a worker process killed when its parent ends.
// Linux sends the signal when the thread that started the child exits;
// the Go runtime keeps its threads unless a goroutine locked to one
// exits, which edge-bench never does.
func workerSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
