package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// machineFileLimit is the open-file limit per process on the machine the
// targets of issue 4 are measured on.
const machineFileLimit = 20_000

// spareFiles is how many descriptors a process keeps aside beyond its
// sockets: the runtime's, standard streams, pipes to workers.
const spareFiles = 100

// raiseFileLimit raises this process's open-file soft limit to its hard
// limit, which worker processes inherit, and returns it.
func raiseFileLimit() (int, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read the open-file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		}
	}
	return int(min(lim.Cur, 1<<30)), nil
}

// checkFiles refuses a process that needs need sockets under an
// open-file limit of limit; hint says what to do instead.
func checkFiles(need, limit int, hint string) error {
	if need+spareFiles <= limit {
		return nil
	}
	return fmt.Errorf("this run needs about %d open files but a process may open %d (RLIMIT_NOFILE; this machine allows %d files per process): %s",
		need+spareFiles, limit, machineFileLimit, hint)
}

// checkRunFiles checks that the processes of run c fit an open-file limit
// of limit: each holds its share of the subscribers, and the publishing
// process its publishers. The error names the --workers that would fit.
func checkRunFiles(c config, limit int) error {
	fits := max(limit-spareFiles, 1)
	suggest := max(ceilDiv(c.Subs, fits), 2)
	if c.Workers == 1 {
		return checkFiles(c.Subs+c.Publishers, limit,
			fmt.Sprintf("add --workers %d to run the subscribers in %d processes", suggest, suggest))
	}
	if err := checkFiles(ceilDiv(c.Subs, c.Workers), limit,
		fmt.Sprintf("raise --workers to %d", max(suggest, c.Workers+1))); err != nil {
		return err
	}
	return checkFiles(c.Publishers+3*c.Workers, limit, "use fewer --publishers or --workers")
}

// checkSourcePorts refuses a run c whose busiest --sources address would
// carry more subscribers than it has client ports (ports, 0 for unknown).
func checkSourcePorts(c config, ports int) error {
	busiest := 0
	for _, n := range subsPerSource(c) {
		busiest = max(busiest, n)
	}
	if ports == 0 || busiest <= ports {
		return nil
	}
	return fmt.Errorf("--subs %d over --sources gives one address %d connections, more than its %d client ports (net.ipv4.ip_local_port_range): give %d or more loopback addresses with --sources, e.g. 127.0.0.2,127.0.0.3,…",
		c.Subs, busiest, ports, max(ceilDiv(c.Subs, ports), c.Workers))
}

// subsPerSource returns how many subscribers of run c each --sources
// address carries, at most: a process spreads its subscribers evenly over
// its addresses, and with --workers each worker has its own (see
// workerSources).
func subsPerSource(c config) map[string]int {
	load := make(map[string]int)
	workers := max(c.Workers, 1)
	for w := range workers {
		own := workerSources(c.Sources, w, workers)
		n := ceilDiv(c.Subs-w, workers)
		for _, ip := range own {
			load[ip.String()] += ceilDiv(n, len(own))
		}
	}
	return load
}

// clientPorts returns how many client ports one source address has: the
// size of net.ipv4.ip_local_port_range, or 0 when it cannot be read.
func clientPorts() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) != 2 {
		return 0
	}
	lo, err1 := strconv.Atoi(string(f[0]))
	hi, err2 := strconv.Atoi(string(f[1]))
	if err1 != nil || err2 != nil || hi < lo {
		return 0
	}
	return hi - lo + 1
}

// ceilDiv returns a/b rounded up, for positive b.
func ceilDiv(a, b int) int { return (a + b - 1) / b }
