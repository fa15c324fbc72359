package idle

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Watcher watches parked connections for readability with one goroutine,
// which runs only while at least one connection is added. The zero value
// is ready to use; its methods are safe for concurrent use.
type Watcher struct {
	// mu guards every field below and the added state of every Handle;
	// ready functions are called holding it.
	mu      sync.Mutex
	epfd    int // the epoll instance while running
	wakefd  int // an eventfd in the set, written to make the loop look at handles
	handles map[uint64]*Handle
	next    uint64 // the last id handed out; 0 is the wake fd
	parked  int    // handles armed and not yet reported
	running bool
	broken  bool // epoll failed: nothing more is added
	loop    sync.WaitGroup
}

// Handle is a connection added to a Watcher.
type Handle struct {
	w     *Watcher
	id    uint64
	rc    syscall.RawConn
	ready func()
	added bool // the socket is in the epoll set (armed or fired); guarded by w.mu
	armed bool // parked and not yet reported; guarded by w.mu
}

// events are what a parked socket is watched for: readable, or the peer
// closed its side (EPOLLERR and EPOLLHUP are always reported). One-shot:
// once reported, the socket is not reported again until parked again.
const events = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// Add adds the socket rc to the watcher, not yet parked, and returns its
// handle; ready is called, holding the watcher's lock, each time the
// parked socket becomes readable or fails, and must return at once
// without calling the watcher (it starts a goroutine, or sets a flag and
// wakes a writer). Add returns nil when the watcher cannot watch (epoll
// failed): the caller then reads in a goroutine as usual.
func (w *Watcher) Add(rc syscall.RawConn, ready func()) *Handle {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken {
		return nil
	}
	if !w.running {
		if err := w.startLocked(); err != nil {
			w.broken = true
			return nil
		}
	}
	w.next++
	if w.next == 0 { // wrapped: skip the wake fd's id
		w.next++
	}
	h := &Handle{w: w, id: w.next, rc: rc, ready: ready}
	w.handles[h.id] = h
	return h
}

// startLocked creates the epoll instance and starts the loop.
func (w *Watcher) startLocked() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("idle: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return fmt.Errorf("idle: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return fmt.Errorf("idle: watch eventfd: %w", err)
	}
	w.epfd, w.wakefd = epfd, wakefd
	if w.handles == nil {
		w.handles = make(map[uint64]*Handle)
	}
	w.running = true
	w.loop.Add(1)
	go w.run(epfd, wakefd)
	return nil
}

// run waits for parked sockets to become readable and calls their ready
// functions. It ends, closing the epoll instance, once no handle is left.
func (w *Watcher) run(epfd, wakefd int) {
	defer w.loop.Done()
	evs := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(epfd, evs, -1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			w.fail()
			return
		}
		w.mu.Lock()
		for _, ev := range evs[:max(n, 0)] {
			id := eventID(&ev)
			if id == 0 {
				var b [8]byte
				unix.Read(wakefd, b[:])
				continue
			}
			if h := w.handles[id]; h != nil && h.armed {
				h.disarmLocked()
				h.ready()
			}
		}
		if len(w.handles) == 0 {
			w.stopLocked()
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
	}
}

// fail hands every added socket back to its caller when epoll_wait
// fails, which it does not but for a bug: each is reported ready (its
// reader finds what there is, or blocks in a goroutine as without a
// watcher) and forgotten, and nothing more is added.
func (w *Watcher) fail() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.broken = true
	for id, h := range w.handles {
		h.disarmLocked()
		h.added = false
		delete(w.handles, id)
		h.ready()
	}
	w.stopLocked()
}

// stopLocked closes the epoll instance; the loop is ending.
func (w *Watcher) stopLocked() {
	unix.Close(w.wakefd)
	unix.Close(w.epfd)
	w.running = false
}

// Parked returns how many handles are parked: armed and not yet
// reported ready.
func (w *Watcher) Parked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.parked
}

// Wait waits until the watcher's goroutine has ended, which it does once
// every handle is removed. The caller makes sure none is added meanwhile.
func (w *Watcher) Wait() { w.loop.Wait() }

// Park arms the socket: ready is called once it is readable (at once when
// it already is). The caller's reader must hold nothing buffered from it.
// After ready, the socket is not watched until Park is called again. An
// error means it could not be parked (the connection closed, or the
// kernel refused); the caller reads in a goroutine instead.
func (h *Handle) Park() error {
	w := h.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.handles[h.id]; !ok {
		return errors.New("idle: park of a removed handle")
	}
	op := unix.EPOLL_CTL_MOD
	if !h.added {
		op = unix.EPOLL_CTL_ADD
	}
	ev := unix.EpollEvent{Events: events}
	setEventID(&ev, h.id)
	var err error
	// Control keeps the descriptor open during the call, so it cannot
	// be another connection's, reused after a close.
	if cerr := h.rc.Control(func(fd uintptr) {
		err = unix.EpollCtl(w.epfd, op, int(fd), &ev)
	}); cerr != nil {
		return fmt.Errorf("idle: park: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("idle: park: epoll_ctl: %w", err)
	}
	h.added = true
	if !h.armed {
		h.armed = true
		w.parked++
	}
	return nil
}

// disarmLocked notes that the handle is no longer parked.
func (h *Handle) disarmLocked() {
	if h.armed {
		h.armed = false
		h.w.parked--
	}
}

// Remove takes the socket out of the watcher; once it returns, ready is
// not called again. Call it before closing the connection, so that the
// descriptor leaves the set while it is still this connection's. Remove
// of a nil handle, or twice, does nothing.
func (h *Handle) Remove() {
	if h == nil {
		return
	}
	w := h.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.handles[h.id]; !ok {
		return
	}
	delete(w.handles, h.id)
	h.disarmLocked()
	if h.added {
		h.added = false
		h.rc.Control(func(fd uintptr) {
			unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
		})
	}
	if len(w.handles) == 0 {
		var one = [8]byte{1}
		unix.Write(w.wakefd, one[:]) // the loop ends
	}
}

// eventID is the handle id an event carries in its data.
func eventID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

func setEventID(ev *unix.EpollEvent, id uint64) {
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
}
