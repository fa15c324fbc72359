// Package edgetls terminates TLS for the edge: off (plain HTTP, behind a
// load balancer), a generated self-signed certificate for local
// development, certificate files reloaded when they change, or ACME with
// github.com/caddyserver/certmagic (HTTP-01 and TLS-ALPN-01 challenges,
// automatic renewal, on-demand certificates for approved names, and
// storage shared by a fleet through Redis).
//
// Import it as edgetls; it hands out *crypto/tls.Config values, never
// certmagic types.
package edgetls
