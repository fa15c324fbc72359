package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := mainRun(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usage is the top-level help.
const usage = `Usage:
  edge-bench run [flags]       load a running edge (loopback only) and report
  edge-bench baseline [flags]  plain TCP fan-out on loopback, for comparison

Run "edge-bench run -h" or "edge-bench baseline -h" for the flags.
`

// mainRun runs the subcommand in args and returns the exit code: 0 when
// every expected message arrived exactly once, 1 when some were lost or
// duplicated or the run failed, 2 for bad usage. The hidden subcommand
// "worker" is a worker process of a run with --workers: it talks to its
// parent over stdin and stdout and exits 0 when it reported.
func mainRun(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var bench func(context.Context, config, io.Writer) (*report, error)
	switch args[0] {
	case "run":
		bench = runBench
	case "baseline":
		bench = runBaseline
	case "worker": // started by run --workers; see runWorker
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "edge-bench: unknown command %q\n%s", args[0], usage)
		return 2
	}
	c, err := parseConfig(args[0], args[1:], stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "edge-bench %s: %v\n", args[0], err)
		return 2
	}
	if args[0] == "worker" {
		if err := runWorker(ctx, c, stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "edge-bench worker %d: %v\n", c.WorkerIndex, err)
			return 1
		}
		return 0
	}
	rep, err := bench(ctx, c, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "edge-bench %s: %v\n", args[0], err)
		return 1
	}
	if err := rep.write(stdout, c.JSON); err != nil {
		fmt.Fprintf(stderr, "edge-bench: %v\n", err)
		return 1
	}
	if rep.Lost > 0 || rep.Duplicated > 0 || rep.Reordered > 0 {
		fmt.Fprintf(stderr, "edge-bench: %d lost, %d duplicated, %d reordered\n", rep.Lost, rep.Duplicated, rep.Reordered)
		return 1
	}
	return 0
}
