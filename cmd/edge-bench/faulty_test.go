package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// faultyEdge is a stand-in for the edge that loses and repeats messages on
// purpose: of the publishes it receives (counted from 0), it acknowledges
// but never delivers every one whose number is 3 mod 10, and delivers twice
// every other one whose number is 5 mod 7. It speaks just enough SSE.
type faultyEdge struct {
	mu        sync.Mutex
	subs      []chan []byte
	published int
}

func (f *faultyEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/subscribe":
		ch := make(chan []byte, 1024)
		f.mu.Lock()
		f.subs = append(f.subs, ch)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "id: 0-0\n\n")
		w.(http.Flusher).Flush()
		for {
			select {
			case p := <-ch:
				fmt.Fprintf(w, "data: %s\n\n", p)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	case "/v1/publish":
		p, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		n := f.published
		f.published++
		copies := 1
		switch {
		case n%10 == 3:
			copies = 0
		case n%7 == 5:
			copies = 2
		}
		for _, ch := range f.subs {
			for range copies {
				ch <- p
			}
		}
		f.mu.Unlock()
		fmt.Fprintf(w, `{"channel":"bench-0","id":"1-%d"}`, n)
	default:
		http.NotFound(w, r)
	}
}

// The tool counts exactly what a faulty edge lost and repeated.
func TestCountsLossAndDuplicates(t *testing.T) {
	srv := httptest.NewServer(&faultyEdge{})
	defer srv.Close()
	const subs, published = 4, 100
	c := parse(t, "run", "--url", srv.URL, "--transport", "sse", "--subs", fmt.Sprint(subs),
		"--rate", "400", "--duration", "250ms", "--publishers", "1", "--drain", "300ms")
	rep, err := runBench(t.Context(), c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var dropped, repeated int64
	for n := range published {
		switch {
		case n%10 == 3:
			dropped++
		case n%7 == 5:
			repeated++
		}
	}
	if rep.Published != published || rep.Expected != published*subs {
		t.Fatalf("published %d, expected %d; want %d and %d", rep.Published, rep.Expected, published, published*subs)
	}
	if rep.Lost != dropped*subs || rep.Duplicated != repeated*subs || rep.Delivered != (published-dropped)*subs {
		t.Errorf("lost %d, duplicated %d, delivered %d; want %d, %d, %d",
			rep.Lost, rep.Duplicated, rep.Delivered, dropped*subs, repeated*subs, (published-dropped)*subs)
	}
}
