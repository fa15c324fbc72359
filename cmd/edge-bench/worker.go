package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// With --workers K, a run starts K worker processes: its own executable
// with the hidden subcommand "worker", each running one share of the
// subscribers (see fleet) from its share of --sources, while the parent
// publishes. They talk in JSON lines:
//
//	worker → parent (stdout)  {"ready":{…}}       its ramp is over
//	parent → worker (stdin)   {"published":[…]}   every worker is ready and the parent has published
//	worker → parent (stdout)  {"drained":true}    the expected deliveries arrived, or --drain passed
//	parent → worker (stdin)   end of file         every worker has drained: stop
//	worker → parent (stdout)  {"result":{…}}      then it exits
//
// The parent reads the edge's CPU time (--pid) between the drained lines
// and the end of stdin, so that it leaves out the subscribers' leaving.
// A worker dies with its parent: on Linux it gets SIGKILL when the parent
// ends (Pdeathsig), and it stops when its stdin ends before the published
// line. The parent kills every worker when one fails or overruns its time.

// workerStopWithin bounds how long a worker may take to close its
// connections and report its result.
const workerStopWithin = 30 * time.Second

// workerMessage is one JSON line between a worker and its parent.
type workerMessage struct {
	Ready     *rampFigures  `json:"ready,omitempty"`
	Published []int64       `json:"published,omitempty"`
	Drained   bool          `json:"drained,omitempty"`
	Result    *tallyFigures `json:"result,omitempty"`
}

// errParentGone stops a worker whose stdin ended before the published
// line.
var errParentGone = errors.New("the parent went away (stdin ended)")

// runWorker runs share c.WorkerIndex of c.Workers of run c as a worker
// process, speaking the protocol above on stdin and stdout. It reads stdin
// in a goroutine that ends with stdin, which it waits for before its
// result; on the other paths the process exits under it.
func runWorker(ctx context.Context, c config, stdin io.Reader, stdout io.Writer) error {
	limit, err := raiseFileLimit()
	if err != nil {
		return err
	}
	if err := checkFiles(ceilDiv(c.Subs, c.Workers), limit, "raise --workers"); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	published := make(chan []int64, 1)
	stop := make(chan struct{}) // closed when stdin ends
	go func() {
		defer close(stop)
		in := json.NewDecoder(stdin)
		var m workerMessage
		if err := in.Decode(&m); err != nil || m.Published == nil {
			cancel(errParentGone)
			return
		}
		published <- m.Published
		for in.Decode(&m) == nil {
		}
	}()

	f := newFleet(ctx, c, c.WorkerIndex, c.Workers)
	defer f.close()
	r, err := f.ramp()
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	out := json.NewEncoder(stdout)
	if err := out.Encode(workerMessage{Ready: &r}); err != nil {
		return err
	}
	var p []int64
	select {
	case p = <-published:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if len(p) != c.Channels {
		return fmt.Errorf("%d published counts for %d channels", len(p), c.Channels)
	}
	if err := f.drain(p); err != nil {
		return err
	}
	if err := out.Encode(workerMessage{Drained: true}); err != nil {
		return err
	}
	select {
	case <-stop:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	t, err := f.finish()
	if err != nil {
		return err
	}
	return out.Encode(workerMessage{Result: &t})
}

// workerProc is a share run by a worker process, seen from the parent.
type workerProc struct {
	index    int
	channels int
	urls     int // how many --url
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	out      *json.Decoder
	stderr   *tailWriter
	// rampWithin and drainWithin bound the waits for the worker's ready
	// and drained lines, workerStopWithin its result; past them the
	// worker is killed.
	rampWithin, drainWithin time.Duration

	waitOnce sync.Once
	waitErr  error
}

var _ share = (*workerProc)(nil)

// startWorkers starts the c.Workers worker processes of run c from
// executable exe, within ctx.
func startWorkers(ctx context.Context, c config, exe string) ([]share, error) {
	var shares []share
	for i := range c.Workers {
		w, err := startWorker(ctx, c, exe, i)
		if err != nil {
			for _, s := range shares {
				s.close()
			}
			return nil, err
		}
		shares = append(shares, w)
	}
	return shares, nil
}

// startWorker starts worker index of run c.
func startWorker(ctx context.Context, c config, exe string, index int) (*workerProc, error) {
	n := ceilDiv(c.Subs-index, c.Workers) // subscribers of this worker
	batch := ceilDiv(c.RampBatch, c.Workers)
	w := &workerProc{
		index:    index,
		channels: c.Channels,
		urls:     len(c.URLs),
		stderr:   &tailWriter{max: 2048},
		// As long as a ramp of the share could take in this process: every
		// connection timing out, batch at a time.
		rampWithin:  time.Duration(ceilDiv(n, batch))*connectTimeout + 30*time.Second,
		drainWithin: c.Drain + 30*time.Second,
	}
	w.cmd = exec.CommandContext(ctx, exe, workerArgs(c, index)...)
	w.cmd.SysProcAttr = workerSysProcAttr()
	w.cmd.Stderr = w.stderr
	w.cmd.WaitDelay = time.Second
	var err error
	if w.stdin, err = w.cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("worker %d: %w", index, err)
	}
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("worker %d: %w", index, err)
	}
	w.out = json.NewDecoder(bufio.NewReader(stdout))
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("worker %d: start %s: %w", index, exe, err)
	}
	return w, nil
}

// workerArgs returns the command line of worker index of run c: run's
// settings that concern subscribers, its share of --ramp-batch and its
// share of --sources.
func workerArgs(c config, index int) []string {
	var sources []string
	for _, ip := range workerSources(c.Sources, index, c.Workers) {
		sources = append(sources, ip.String())
	}
	args := []string{"worker",
		"--url", joinURLs(c.URLs),
		"--target", c.Target,
		"--transport", c.Transport,
		"--subs", strconv.Itoa(c.Subs),
		"--channels", strconv.Itoa(c.Channels),
		"--size", strconv.Itoa(c.Size),
		"--ramp-batch", strconv.Itoa(ceilDiv(c.RampBatch, c.Workers)),
		"--drain", c.Drain.String(),
		"--sources", strings.Join(sources, ","),
		"--workers", strconv.Itoa(c.Workers),
		"--worker-index", strconv.Itoa(index),
	}
	if c.Reconnect {
		args = append(args, "--reconnect")
	}
	args = append(args, "--payload", c.Payload, "--wake-gap", c.WakeGap.String())
	if c.Conflate > 0 {
		args = append(args, "--conflate", c.Conflate.String())
	}
	if c.Delta != "" {
		args = append(args, "--delta", c.Delta)
	}
	if c.Compress {
		args = append(args, "--compress")
	}
	if c.KeyCount > 0 {
		args = append(args, "--key-count", strconv.Itoa(c.KeyCount))
	}
	return args
}

// joinURLs returns urls as --url takes them.
func joinURLs(urls []*url.URL) string {
	s := make([]string, len(urls))
	for i, u := range urls {
		s[i] = u.String()
	}
	return strings.Join(s, ",")
}

// workerSources returns the source addresses of worker index of count:
// every count-th address from the index-th, or with fewer addresses than
// workers the (index mod len(sources))-th.
func workerSources(sources []net.IP, index, count int) []net.IP {
	if len(sources) < count {
		return sources[index%len(sources) : index%len(sources)+1]
	}
	var own []net.IP
	for i := index; i < len(sources); i += count {
		own = append(own, sources[i])
	}
	return own
}

// ramp returns the worker's ready line.
func (w *workerProc) ramp() (rampFigures, error) {
	var m workerMessage
	if err := w.read(&m, w.rampWithin); err != nil {
		return rampFigures{}, err
	}
	if m.Ready == nil || len(m.Ready.ReadyPerChannel) != w.channels || len(m.Ready.ReadyPerURL) != w.urls {
		return rampFigures{}, w.fail(errors.New("its first line is not a ready line for this run"))
	}
	return *m.Ready, nil
}

// drain sends the published counts and reads the worker's drained line.
func (w *workerProc) drain(published []int64) error {
	if err := json.NewEncoder(w.stdin).Encode(workerMessage{Published: published}); err != nil {
		return w.fail(fmt.Errorf("send the published counts: %w", err))
	}
	var m workerMessage
	if err := w.read(&m, w.drainWithin); err != nil {
		return err
	}
	if !m.Drained {
		return w.fail(errors.New("its second line is not a drained line"))
	}
	return nil
}

// finish closes the worker's stdin, reads its result and waits for it to
// exit.
func (w *workerProc) finish() (tallyFigures, error) {
	w.stdin.Close()
	var m workerMessage
	if err := w.read(&m, workerStopWithin); err != nil {
		return tallyFigures{}, err
	}
	if m.Result == nil || m.Result.Latency == nil || m.Result.SteadyLatency == nil {
		return tallyFigures{}, w.fail(errors.New("its last line is not a result line"))
	}
	if err := w.wait(); err != nil {
		return tallyFigures{}, w.fail(err)
	}
	return *m.Result, nil
}

// read decodes the worker's next line into m, killing the worker if none
// comes within d.
func (w *workerProc) read(m *workerMessage, d time.Duration) error {
	overran := time.AfterFunc(d, func() { w.cmd.Process.Kill() })
	err := w.out.Decode(m)
	if !overran.Stop() {
		return w.fail(fmt.Errorf("no line within %s", d))
	}
	if err != nil {
		return w.fail(fmt.Errorf("read its output: %w", err))
	}
	return nil
}

// fail kills the worker and returns err about it, with its exit status
// (when it exited by itself, not by a signal such as this kill) and the
// end of what it wrote to stderr.
func (w *workerProc) fail(err error) error {
	w.cmd.Process.Kill()
	exit := w.wait()
	msg := fmt.Sprintf("worker %d: %v", w.index, err)
	var ee *exec.ExitError
	if exit != nil && !(errors.As(exit, &ee) && !ee.Exited()) && !strings.Contains(msg, exit.Error()) {
		msg += " (" + exit.Error() + ")"
	}
	if tail := strings.TrimSpace(w.stderr.String()); tail != "" {
		msg += ": " + tail
	}
	return errors.New(msg)
}

// wait waits for the worker to exit, once, and returns how it exited.
func (w *workerProc) wait() error {
	w.waitOnce.Do(func() { w.waitErr = w.cmd.Wait() })
	return w.waitErr
}

// close kills the worker unless it has exited, and waits for it.
func (w *workerProc) close() {
	w.cmd.Process.Kill()
	w.wait()
}

// tailWriter keeps the last max bytes written to it. It is safe for
// concurrent use.
type tailWriter struct {
	mu  sync.Mutex // guards b
	b   []byte
	max int
}

// Write keeps the end of p.
func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

// String returns what it kept.
func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
