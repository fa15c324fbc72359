package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDocNamesEveryFlag checks that the package documentation (doc.go,
// what go doc ./cmd/edge shows and the README links to) describes every
// flag that edge --help prints, so a new flag cannot go undocumented.
func TestDocNamesEveryFlag(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &help, &help); code != 0 {
		t.Fatalf("edge --help exited %d: %s", code, help.String())
	}
	var flags []string
	for line := range strings.Lines(help.String()) {
		if rest, ok := strings.CutPrefix(line, "  -"); ok {
			flags = append(flags, strings.Fields(rest)[0])
		}
	}
	if len(flags) < 40 {
		t.Fatalf("found %d flags in edge --help, want every flag:\n%s", len(flags), help.String())
	}
	for _, name := range flags {
		t.Run(name, func(t *testing.T) {
			if !regexp.MustCompile(`--` + regexp.QuoteMeta(name) + `([^A-Za-z0-9_-]|$)`).Match(doc) {
				t.Errorf("cmd/edge/doc.go does not describe --%s; add it to the Flags section", name)
			}
		})
	}
}
