package resume_test

import (
	"fmt"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
)

// A cursor for one channel is the message id; for several it is opaque.
func ExampleCursor() {
	var one resume.Cursor
	one.Set("news", edge.ID{Ms: 1732270000000, Seq: 3})
	fmt.Println(one.String())

	var two resume.Cursor
	two.Set("news", edge.ID{Ms: 1732270000000, Seq: 3})
	two.Set("prices", edge.ID{Ms: 1732270000001})
	back, _ := resume.ParseCursor(two.String(), []string{"news", "prices"})
	id, _ := back.Get("prices")
	fmt.Println(id)
	// Output:
	// 1732270000000-3
	// 1732270000001-0
}
