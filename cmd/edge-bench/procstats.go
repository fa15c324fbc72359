package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat.
const clockTicks = 100

// readRSS returns the resident set size of process pid in bytes (VmRSS of
// /proc/PID/status).
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read RSS: %w", err)
	}
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			break
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("read RSS: no VmRSS line in /proc/%d/status", pid)
}

// readCPU returns the CPU time process pid has used, user plus system
// (utime and stime of /proc/PID/stat).
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime+stime from the text of /proc/PID/stat.
func parseStatCPU(b []byte) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may hold spaces and
	// parentheses: the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("read CPU time: malformed /proc stat")
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state); utime is field 14
	if len(f) < 13 {
		return 0, fmt.Errorf("read CPU time: short /proc stat")
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("read CPU time: malformed utime/stime in /proc stat")
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// readRSSSum returns the summed resident set sizes of processes pids (see
// readRSS).
func readRSSSum(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		rss, err := readRSS(pid)
		if err != nil {
			return 0, fmt.Errorf("--pid %d: %w", pid, err)
		}
		sum += rss
	}
	return sum, nil
}

// readCPUSum returns the summed CPU times of processes pids (see
// readCPU).
func readCPUSum(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		cpu, err := readCPU(pid)
		if err != nil {
			return 0, fmt.Errorf("--pid %d: %w", pid, err)
		}
		sum += cpu
	}
	return sum, nil
}
