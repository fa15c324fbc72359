package client

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.HandlerFunc, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h(w, r)
	return w
}

func TestScriptForms(t *testing.T) {
	mod := get(t, ServeScript, "/v1/client.js", nil)
	if mod.Code != 200 || mod.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("module: %d %q", mod.Code, mod.Header().Get("Content-Type"))
	}
	if !bytes.Equal(mod.Body.Bytes(), moduleJS) {
		t.Fatal("the module is not client.js")
	}
	cls := get(t, ServeScript, "/v1/client.js?classic", nil).Body.String()
	if strings.Contains(cls, "\nexport ") {
		t.Fatal("the classic script has an export statement")
	}
	if !strings.HasPrefix(cls, "(() => {\n") || !strings.HasSuffix(cls, "globalThis.edge = edge;\n})();\n") {
		t.Fatalf("the classic script is not wrapped: %q … %q", cls[:20], cls[len(cls)-40:])
	}
}

func TestRevalidation(t *testing.T) {
	first := get(t, ServeScript, "/v1/client.js", nil)
	etag := first.Header().Get("ETag")
	if etag == "" || first.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, first.Header().Get("Cache-Control"))
	}
	again := get(t, ServeScript, "/v1/client.js", http.Header{"If-None-Match": {etag}})
	if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
		t.Fatalf("revalidation: %d with %d bytes", again.Code, again.Body.Len())
	}
	if other := get(t, ServeScript, "/v1/client.js?classic", nil).Header().Get("ETag"); other == etag {
		t.Fatal("the classic script has the module's ETag")
	}
}

// Every name client.js exports is declared in client.d.ts.
func TestTypesDeclareEveryExport(t *testing.T) {
	block := regexp.MustCompile(`(?m)^export \{([^}]*)\};`).FindSubmatch(moduleJS)
	if block == nil {
		t.Fatal("no export block in client.js")
	}
	for _, name := range strings.Split(string(block[1]), ",") {
		name = strings.TrimSpace(name)
		if _, alias, ok := strings.Cut(name, " as "); ok {
			name = alias
		}
		decl := regexp.MustCompile(`export (function|const|class) ` + name + `\b`)
		if !decl.Match(typesTS) {
			t.Errorf("client.d.ts does not declare %s", name)
		}
	}
	if !bytes.Contains(moduleJS, []byte("\nexport default edge;")) || !bytes.Contains(typesTS, []byte("export default edge;")) {
		t.Error("the default export is missing from client.js or client.d.ts")
	}
}

func TestDemoAndTypes(t *testing.T) {
	d := get(t, ServeDemo, "/", nil)
	if d.Header().Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(d.Body.String(), `from "/v1/client.js"`) {
		t.Fatalf("demo: %q", d.Header().Get("Content-Type"))
	}
	if d.Header().Get("Content-Security-Policy") == "" {
		t.Error("the demo page has no Content-Security-Policy")
	}
	if ts := get(t, ServeTypes, "/v1/client.d.ts", nil); !strings.Contains(ts.Body.String(), "export function subscribe(") {
		t.Fatal("client.d.ts does not declare subscribe")
	}
}

// client.d.ts describes client.js as TypeScript sees it: tsc (strict)
// accepts a program that uses the API, and rejects a wrong transport.
// EDGE_TSC names the compiler; .ci/run installs one.
func TestTypesCompile(t *testing.T) {
	tsc := os.Getenv("EDGE_TSC")
	if tsc == "" {
		var err error
		if tsc, err = exec.LookPath("tsc"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("no TypeScript compiler (CI is set, so this fails): set EDGE_TSC or put tsc on PATH; bash .ci/run installs it")
			}
			t.Skip("no TypeScript compiler: set EDGE_TSC or put tsc on PATH (bash .ci/run installs it)")
		}
	}
	dir := t.TempDir()
	for name, body := range map[string][]byte{"client.js": moduleJS, "client.d.ts": typesTS} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"use.ts", "tsconfig.json"} {
		body, err := os.ReadFile(filepath.Join("testdata", "types", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(tsc, "-p", dir).CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
}
