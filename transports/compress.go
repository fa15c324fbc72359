package transports

import (
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"strings"

	"github.com/klauspost/compress/flate"

	"github.com/edgeworks/edge/edge"
)

// CompressMode says when the edge compresses what it sends to
// subscribers; see Config.Compress.
type CompressMode string

// The modes of Config.Compress.
const (
	// CompressRequest compresses for a subscriber that asks with
	// compress=1.
	CompressRequest CompressMode = "request"
	// CompressAlways compresses for every subscriber that allows it,
	// unless it says compress=0.
	CompressAlways CompressMode = "always"
	// CompressNever compresses for no subscriber; compress=1 is accepted
	// and ignored.
	CompressNever CompressMode = "never"
)

// compressParam is the subscribe parameter that asks for (1, true) or
// against (0, false) compression.
const compressParam = "compress"

// wantsCompression reads compress= and reports whether r's answer is to be
// compressed, as far as the server's mode and the request say: the client
// must still allow it (acceptsGzip for SSE and long-poll, a
// permessage-deflate offer for WebSocket). A compress= other than 1, true,
// 0 or false is an edge.ErrBadRequest, in every mode.
func (s *Server) wantsCompression(r *http.Request) (bool, error) {
	on, err := queryBool(r, compressParam)
	if err != nil {
		return false, err
	}
	switch s.cfg.Compress {
	case CompressAlways:
		return on || queryValue(r.URL.RawQuery, compressParam) == "", nil
	case CompressNever:
		return false, nil
	}
	return on, nil
}

// gzipResponse reports whether r's SSE stream or long-poll answer is
// gzip-encoded: the request wants it (wantsCompression) and its
// Accept-Encoding allows gzip.
func (s *Server) gzipResponse(r *http.Request) (bool, error) {
	want, err := s.wantsCompression(r)
	return want && acceptsGzip(r.Header.Values("Accept-Encoding")), err
}

// countCompressed counts st among the open compressed streams until it
// ends. Call it after st.init, holding the turn.
func (s *Server) countCompressed(st *stream) {
	s.compressed.Add(1)
	closeFn := st.closeFn
	st.closeFn = func() {
		s.compressed.Add(-1)
		closeFn()
	}
}

// setGzipHeader marks h's response as gzip-encoded, varying by the
// request's Accept-Encoding.
func setGzipHeader(h http.Header) {
	h.Set("Content-Encoding", "gzip")
	h.Add("Vary", "Accept-Encoding")
}

// acceptsGzip reports whether the Accept-Encoding field values allow a
// gzip-encoded answer (RFC 9110, section 12.5.3): gzip or x-gzip with a
// non-zero weight, or, where neither is named, "*" with a non-zero
// weight. An element whose weight does not parse refuses what it names.
func acceptsGzip(values []string) bool {
	named, star := false, false
	for _, v := range values {
		for elem := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(elem, ";")
			coding = strings.TrimSpace(coding)
			ok := weightNonZero(params)
			switch {
			case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
				if !ok {
					return false
				}
				named = true
			case coding == "*":
				star = ok
			}
		}
	}
	return named || star
}

// weightNonZero reports whether the parameters of an Accept-Encoding
// element (after its first ";") give it a non-zero weight: no q, or a q
// of 0.001 to 1.
func weightNonZero(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, value, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		return qNonZero(strings.TrimSpace(value))
	}
	return true
}

// qNonZero reports whether the qvalue q ("0", "0.5", "1.000") is a valid
// weight over zero.
func qNonZero(q string) bool {
	intPart, frac, _ := strings.Cut(q, ".")
	if len(frac) > 3 {
		return false
	}
	for _, c := range []byte(frac) {
		if c < '0' || c > '9' {
			return false
		}
	}
	switch intPart {
	case "1":
		return strings.Trim(frac, "0") == ""
	case "0":
		return strings.Trim(frac, "0") != ""
	}
	return false
}

// gzipDict is the most a compressed stream remembers of what it sent: the
// dictionary that its next event is compressed against. A dashboard's
// update, a little over 1 KiB, then compresses against the whole previous
// one (see BenchmarkCompressorChoice: larger dictionaries gain nothing on
// it and cost time).
const gzipDict = 2 << 10

// gzipHeader starts a gzip member: deflate, no flags, no time, unknown OS.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// gzipStream gzip-encodes one stream (an SSE response body) event by
// event: each event is compressed alone with klauspost/compress's
// stateless deflate, against a dictionary of the last gzipDict bytes
// sent, and ends on a byte boundary (a sync flush), so that the client
// decodes it as soon as it arrives. Between events it keeps only that
// dictionary and the checksum, where a compress/flate writer would keep
// about a megabyte. It is not safe for concurrent use: the stream's turn
// owns it.
type gzipStream struct {
	prefix []byte // written plain before the first compressed bytes (a hijacked stream's response head)
	dict   []byte // the last bytes compressed, at most gzipDict
	crc    uint32 // of every byte compressed
	size   uint32 // of every byte compressed, modulo 2³²
	begun  bool   // the gzip header was written
	last   bool   // the next append ends the gzip member
	out    appendWriter
}

// appendWriter is an io.Writer that appends to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// finish has the next append end the gzip member after its bytes, for the
// last write of a stream.
func (z *gzipStream) finish() { z.last = true }

// append appends p compressed to dst: after the prefix and the gzip
// header the first time, and with the end of the member after finish.
func (z *gzipStream) append(dst, p []byte) []byte {
	if !z.begun {
		dst = append(append(dst, z.prefix...), gzipHeader...)
		z.prefix, z.begun = nil, true
	}
	z.out.b = dst
	// The writer never fails, nor so does StatelessDeflate.
	flate.StatelessDeflate(&z.out, p, false, z.dict)
	z.crc = crc32.Update(z.crc, crc32.IEEETable, p)
	z.size += uint32(len(p))
	z.remember(p)
	if z.last {
		flate.StatelessDeflate(&z.out, nil, true, nil)
		z.out.b = binary.LittleEndian.AppendUint32(z.out.b, z.crc)
		z.out.b = binary.LittleEndian.AppendUint32(z.out.b, z.size)
		z.dict = nil
	}
	dst = z.out.b
	z.out.b = nil
	return dst
}

// remember keeps the last gzipDict bytes of what was compressed, p last.
func (z *gzipStream) remember(p []byte) {
	if z.dict == nil {
		z.dict = make([]byte, 0, gzipDict)
	}
	if len(p) >= gzipDict {
		z.dict = append(z.dict[:0], p[len(p)-gzipDict:]...)
		return
	}
	if keep := gzipDict - len(p); len(z.dict) > keep {
		n := copy(z.dict, z.dict[len(z.dict)-keep:])
		z.dict = z.dict[:n]
	}
	z.dict = append(z.dict, p...)
}

// appendGzip appends p to dst as a whole gzip member, compressed alone:
// a long-poll answer, written at once, needs no state of its own.
func appendGzip(dst, p []byte) []byte {
	w := appendWriter{b: append(dst, gzipHeader...)}
	flate.StatelessDeflate(&w, p, true, nil)
	w.b = binary.LittleEndian.AppendUint32(w.b, crc32.ChecksumIEEE(p))
	return binary.LittleEndian.AppendUint32(w.b, uint32(len(p)))
}

// validateCompress reports a Compress that is none of the modes.
func validateCompress(errs *[]error, m CompressMode) {
	switch m {
	case CompressRequest, CompressAlways, CompressNever:
		return
	}
	*errs = append(*errs, edge.Invalid("Compress", "%q; use %s, %s or %s", string(m), CompressRequest, CompressAlways, CompressNever))
}
