package edge_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
)

// A hub fans a broker's messages out to sessions; a session joins a
// channel at a cursor and gets history, then live messages, at the seam.
func Example() {
	// The zero configurations are valid: defaults everywhere.
	broker := resume.NewMemory(resume.MemoryConfig{})
	hub := edge.NewHub(broker, edge.Config{}, slog.Default())
	ctx := context.Background()

	first, _ := broker.Publish(ctx, "news", "", []byte("before"))
	broker.Publish(ctx, "news", "", []byte("missed"))

	sess, _ := hub.NewSession()
	defer sess.Release()
	sess.Join(ctx, "news", &first, func(p edge.Page) error {
		for _, m := range p.Messages {
			fmt.Printf("history: %s\n", m.Data)
		}
		return nil
	})
	broker.Publish(ctx, "news", "", []byte("live"))
	for _, f := range sess.Take(nil) {
		fmt.Printf("live: %s\n", f.Data)
	}
	// Output:
	// history: missed
	// live: live
}

func ExampleValidateChannel() {
	fmt.Println(edge.ValidateChannel("prices:eu/btc@1m"))
	fmt.Println(edge.ValidateChannel("no spaces"))
	// Output:
	// <nil>
	// edge: invalid channel: channel "no spaces" has byte ' ' at 2; allowed are A-Z a-z 0-9 _ - . : @ /
}

// A conflating session gets, per window, only the newest message of each
// key: the first at once, then the newest of each key when the window
// ends.
func ExampleSession_SetConflate() {
	broker := resume.NewMemory(resume.MemoryConfig{})
	hub := edge.NewHub(broker, edge.Config{}, slog.Default())
	ctx := context.Background()

	sess, _ := hub.NewSession()
	defer sess.Release()
	sess.SetConflate(time.Second)
	sess.Join(ctx, "prices", nil, nil)
	broker.PublishBatch(ctx, []edge.Publication{
		{Channel: "prices", Key: "EURUSD", Data: []byte("EURUSD 1.0801")},
		{Channel: "prices", Key: "EURUSD", Data: []byte("EURUSD 1.0802")},
		{Channel: "prices", Key: "GBPUSD", Data: []byte("GBPUSD 1.2701")},
		{Channel: "prices", Key: "EURUSD", Data: []byte("EURUSD 1.0803")},
	})
	for n := 0; n < 3; {
		frames := sess.Take(nil)
		for _, f := range frames {
			fmt.Printf("%s\n", f.Data)
		}
		if n += len(frames); n < 3 {
			<-sess.Notify()
		}
	}
	// Output:
	// EURUSD 1.0801
	// GBPUSD 1.2701
	// EURUSD 1.0803
}
