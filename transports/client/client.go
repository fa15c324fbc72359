// Package client embeds the edge's browser client (client.js, plain
// JavaScript with no build step), its TypeScript declarations and the demo
// page, and serves them.
//
// client.js is an ES module. The classic-script form, for pages that load
// it with a plain <script src>, is the same code wrapped in a function that
// defines globalThis.edge instead of exporting.
package client

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"time"
)

var (
	//go:embed client.js
	moduleJS []byte
	//go:embed client.d.ts
	typesTS []byte
	//go:embed demo.html
	demoHTML []byte
)

// exportsMarker starts the module's export block, which ends the file.
const exportsMarker = "\nexport {"

// Files served, built once.
var (
	module  = newFile(moduleJS, "text/javascript; charset=utf-8")
	classic = newFile(classicScript(moduleJS), "text/javascript; charset=utf-8")
	types   = newFile(typesTS, "application/typescript; charset=utf-8")
	demo    = newFile(demoHTML, "text/html; charset=utf-8")
)

// classicScript turns the module into a classic script: the code without
// its export block, in a function that sets globalThis.edge.
func classicScript(module []byte) []byte {
	i := bytes.LastIndex(module, []byte(exportsMarker))
	if i < 0 {
		panic("client: client.js has no export block")
	}
	var b bytes.Buffer
	b.WriteString("(() => {\n")
	b.Write(module[:i+1])
	b.WriteString("globalThis.edge = edge;\n})();\n")
	return b.Bytes()
}

type file struct {
	body        []byte
	contentType string
	etag        string
}

func newFile(body []byte, contentType string) file {
	sum := sha256.Sum256(body)
	return file{body, contentType, `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
}

// serve answers with f, revalidated by its ETag (304 when unchanged).
func (f file) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

// ServeScript serves the client: an ES module, or with ?classic a classic
// script that defines globalThis.edge.
func ServeScript(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-TypeScript-Types", "/v1/client.d.ts")
	if r.URL.Query().Has("classic") {
		classic.serve(w, r)
		return
	}
	module.serve(w, r)
}

// ServeTypes serves the client's TypeScript declarations.
func ServeTypes(w http.ResponseWriter, r *http.Request) { types.serve(w, r) }

// ServeDemo serves the demo page: subscribe to a channel, watch messages
// arrive with the transport in use, publish from a form.
func ServeDemo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:")
	demo.serve(w, r)
}
