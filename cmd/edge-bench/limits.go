package main

import (
	"fmt"
	"syscall"
)

// machineFileLimit is the open-file limit per process on the machine the
// targets of issue 4 are measured on.
const machineFileLimit = 20_000

// raiseFileLimit raises this process's open-file soft limit to its hard
// limit and checks that need descriptors fit, with 100 to spare. The error
// says what to do instead.
func raiseFileLimit(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the open-file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		}
	}
	if uint64(need)+100 > lim.Cur {
		return fmt.Errorf("this run needs about %d open files but this process may open %d (RLIMIT_NOFILE; this machine allows %d files per process): use fewer subscribers per process, e.g. several edge-bench processes with fewer --subs each", need+100, lim.Cur, machineFileLimit)
	}
	return nil
}
