package main

import (
	"encoding/json"
	"io"
	"net/url"
	"strings"
)

// masked replaces a secret that is set.
const masked = "********"

// effectiveConfig is cfg keyed by flag name, secrets masked: what
// --print-config shows. Durations are written as flags take them.
func effectiveConfig(cfg config) map[string]any {
	secret := func(s string) string {
		if s == "" {
			return ""
		}
		return masked
	}
	keys := make([]string, len(cfg.PublishKeys))
	for i := range keys {
		keys[i] = masked
	}
	return map[string]any{
		"listen": cfg.Listen, "redis": secretURLs(cfg.Redis), "redis-cluster": cfg.RedisCluster,
		"redis-sentinel-master": cfg.RedisSentinelMaster, "ingest": cfg.Ingest,
		"history-size": cfg.HistorySize, "history-ttl": cfg.HistoryTTL.String(), "history-memory": cfg.HistoryMemory,
		"idempotency-window": cfg.IdempotencyWindow.String(),
		"max-payload":        cfg.MaxPayload, "max-batch": cfg.MaxBatch, "max-channels": cfg.MaxChannels, "queue-bytes": cfg.QueueBytes,
		"heartbeat": cfg.Heartbeat.String(), "poll-timeout": cfg.PollTimeout.String(),
		"poll-timeout-max": cfg.PollTimeoutMax.String(), "poll-linger-max": cfg.PollLingerMax.String(),
		"sse-retry": cfg.SSERetry.String(), "body-timeout": cfg.BodyTimeout.String(), "compress": cfg.Compress,
		"publish-key": keys, "insecure-publish": cfg.InsecurePublish, "jwt-secret": secret(cfg.JWTSecret),
		"jwt-public-key": cfg.JWTPublicKeys, "jwks-url": secretURL(cfg.JWKSURL),
		"jwt-audience": cfg.JWTAudiences, "jwt-issuer": cfg.JWTIssuer, "anonymous": cfg.Anonymous,
		"client-publish": cfg.ClientPublish, "max-conns": cfg.MaxConns, "max-conns-per-ip": cfg.MaxConnsPerIP,
		"subscribe-rate": cfg.SubscribeRate, "resume-rate": cfg.ResumeRate, "publish-rate": cfg.PublishRate, "client-publish-rate": cfg.ClientPublishRate,
		"cors-origin": cfg.CORSOrigin, "drain-timeout": cfg.DrainTimeout.String(), "drain-delay": cfg.DrainDelay.String(),
		"tls": cfg.TLS, "cert": cfg.CertFile, "key": cfg.KeyFile, "domain": cfg.Domains, "email": cfg.Email,
		"acme-ca": secretURL(cfg.ACMECA), "acme-ca-roots": cfg.ACMECARoots, "acme-dir": cfg.ACMEDir, "http-listen": cfg.HTTPListen,
		"on-demand": cfg.OnDemand, "on-demand-allow": cfg.OnDemandAllow, "on-demand-ask": secretURL(cfg.OnDemandAsk),
		"on-demand-rate": cfg.OnDemandRate, "hsts": cfg.HSTS.String(),
		"log-format": cfg.LogFormat, "log-level": cfg.LogLevel,
		"presence": cfg.Presence, "presence-max-members": cfg.PresenceMaxMembers, "node-name": cfg.NodeName,
	}
}

// printConfig writes the effective configuration as indented JSON.
func printConfig(w io.Writer, cfg config) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(effectiveConfig(cfg))
}

// secretURLs masks the credentials of each URL of a comma-separated
// list, as secretURL does.
func secretURLs(list string) string {
	if list == "" {
		return ""
	}
	parts := strings.Split(list, ",")
	for i, p := range parts {
		parts[i] = secretURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// secretURL masks what in a URL may be a credential: the password of
// its userinfo (or a userinfo without a password, which is a token, as in
// https://TOKEN@host) and the value of every query parameter (?key=,
// ?token=, a signature). A URL that does not parse is masked whole.
func secretURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return masked // it might hold anything
	}
	if u.RawQuery != "" {
		pairs := strings.Split(u.RawQuery, "&")
		for i, p := range pairs {
			if key, value, ok := strings.Cut(p, "="); ok && value != "" {
				pairs[i] = key + "=" + masked
			}
		}
		u.RawQuery = strings.Join(pairs, "&")
	}
	user := u.User
	if user == nil {
		return u.String()
	}
	// The userinfo is put back by hand: url.URL.String would escape the
	// mask's asterisks.
	u.User = nil
	info := masked
	if _, ok := user.Password(); ok {
		info = url.User(user.Username()).String() + ":" + masked
	}
	return strings.Replace(u.String(), "//", "//"+info+"@", 1)
}
