package hijack

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"testing"

	"go.uber.org/goleak"
)

// serveParking serves, through a Listener, /park answered by hand on the
// taken connection, which is then given back, and any other path through
// net/http. It returns the server's address; the server and the
// listener's goroutine end with the test.
func serveParking(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, nil)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/park" {
			io.WriteString(w, "served "+r.URL.Path)
			return
		}
		conn, header, pending, err := Take(w)
		if err != nil {
			t.Error(err)
			return
		}
		go func() { // as a parked poll answers: later, from another goroutine
			conn.Write(AppendJSON(nil, http.StatusOK, header, []byte(`{"parked":true}`), true))
			l.GiveBack(conn, pending)
		}()
	})}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestListenerGivesBack pins that net/http serves a connection given back
// after a hand-written answer like a new one: a keep-alive client reuses
// it, and a request the client pipelined behind the parked one is
// replayed from the bytes net/http had read.
func TestListenerGivesBack(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the server's cleanup
	addr := serveParking(t)

	t.Run("keep-alive client", func(t *testing.T) {
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		for i, path := range []string{"/park", "/after", "/park", "/park", "/last"} {
			reused := false
			trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, "http://"+addr+path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := "served " + path
			if path == "/park" {
				want = "{\"parked\":true}\n"
			}
			if err != nil || string(b) != want {
				t.Fatalf("%s: %q (%v), want %q", path, b, err, want)
			}
			if i > 0 && !reused {
				t.Fatalf("%s: on a new connection; the given-back one was not reused", path)
			}
		}
	})
	t.Run("pipelined", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "GET /park HTTP/1.1\r\nHost: edge\r\n\r\nGET /next HTTP/1.1\r\nHost: edge\r\n\r\n")
		br := bufio.NewReader(conn)
		for _, want := range []string{"{\"parked\":true}\n", "served /next"} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if string(b) != want {
				t.Fatalf("answer %q, want %q", b, want)
			}
		}
	})
}

// TestListenerClose checks that Close ends the accept loop and that a
// connection given back after it is closed, not leaked.
func TestListenerClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	server, client := net.Pipe()
	defer client.Close()
	l.GiveBack(server, []byte("GET"))
	if _, err := server.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write to a connection given back after Close: %v, want it closed", err)
	}
}

// TestReplayConn checks that the pending bytes come first, in reads of
// any size.
func TestReplayConn(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	c := &ReplayConn{Conn: server, pending: []byte("pending")}
	go func() { io.WriteString(client, "+wire") }()
	var got []byte
	buf := make([]byte, 3)
	for len(got) < len("pending+wire") {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "pending+wire" {
		t.Fatalf("read %q", got)
	}
}

// With a sort function, accepted connections go to sort instead of
// Accept: what sort gives back reaches net/http with its replayed bytes,
// and Wait returns once every sort has.
func TestListenerSorts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	l := NewListener(ln, func(l *Listener, conn net.Conn) {
		b := make([]byte, len("GET /kept "))
		if _, err := io.ReadFull(conn, b); err != nil {
			conn.Close()
			return
		}
		if string(b) == "GET /kept " {
			<-release // served here until the test lets go
			conn.Close()
			return
		}
		l.GiveBack(conn, b) // net/http reads the request from its start
	})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "served "+r.URL.Path)
	})}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()

	kept, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	io.WriteString(kept, "GET /kept HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.Get("http://" + ln.Addr().String() + "/given")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "served /given" {
		t.Fatalf("given back: %q", body)
	}
	srv.Shutdown(context.Background())
	<-done
	waited := make(chan struct{})
	go func() { l.Wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("Wait returned while sort still served a connection")
	default:
	}
	close(release)
	<-waited
}
