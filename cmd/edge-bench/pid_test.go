package main

import "os"

// syscallGetpid returns the pid of the test process.
func syscallGetpid() int { return os.Getpid() }
