package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	edgetls "github.com/edgeworks/edge/tls"
	"github.com/edgeworks/edge/transports"
	"github.com/edgeworks/edge/transports/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run starts an edge and serves until ctx is done; it returns the exit
// code: 0 after a clean drain, 2 for bad configuration, 1 otherwise.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, cmd, err := load(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, "Usage: edge [flags]  (each flag also as EDGE_<NAME>, or in a JSON --config file)")
		usage(stdout)
		fmt.Fprintln(stdout, "\nThe full reference (flags by topic, environment, config file, signals, exit codes): go doc github.com/edgeworks/edge/cmd/edge")
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "edge: %v\n", err)
		return 2
	}
	if cmd.printConfig {
		if err := printConfig(stdout, cfg); err != nil {
			fmt.Fprintf(stderr, "edge: %v\n", err)
			return 1
		}
		return 0
	}
	log, level := newLogger(cfg, stderr)
	stopLevels := watchLevel(level, log)
	defer stopLevels()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Error("cannot listen; choose another address with --listen", "addr", cfg.Listen, "err", err)
		return 1
	}
	var broker edge.Broker = resume.NewMemory(cfg.memoryConfig())
	store := "memory (embedded)"
	var opts []transports.Option
	if cfg.Redis != "" {
		r, err := resume.NewRedis(cfg.redisConfig(), log)
		if err != nil {
			log.Error("cannot use Redis; check --redis", "err", err)
			return 2
		}
		broker, store = r, "redis"
		opts = append(opts, transports.WithStore(r))
	}
	term, err := newTerminator(cfg, broker, log)
	if err != nil {
		log.Error("cannot set up TLS", "err", err)
		return 2
	}
	defer term.Close()
	scheme, wsScheme := "http", "ws"
	if term.TLSConfig() != nil {
		scheme, wsScheme = "https", "wss"
	}
	if cfg.HTTPListen != "" {
		stop, err := serveHTTP(cfg, term, log)
		if err != nil {
			log.Error("cannot listen for plain HTTP; choose another address with --http-listen", "addr", cfg.HTTPListen, "err", err)
			return 1
		}
		defer stop()
	}
	tel, err := telemetry.New(ctx, telemetry.Options{Env: getenv, Log: log})
	if err != nil {
		log.Error("cannot set up telemetry; check the OTEL_* environment variables", "err", err)
		return 2
	}
	defer shutdownTelemetry(tel, log)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("telemetry: export failed", "err", err) }))
	opts = append(opts, transports.WithTelemetry(transports.Telemetry{
		Meters: tel.Meters, Tracers: tel.Tracers, Propagator: tel.Propagator, Metrics: tel.Handler,
	}))
	srv, err := transports.New(cfg.transportsConfig(), broker, log, opts...)
	if err != nil {
		log.Error("cannot set up token verification; check --jwt-secret, --jwt-public-key and --jwks-url", "err", err)
		return 2
	}
	logAccess(cfg, log)
	log.Info("telemetry: " + tel.Describe())
	if tc := term.TLSConfig(); tc != nil {
		srv.UseTLS(tc, term.Expiry)
	}
	base := scheme + "://" + ln.Addr().String()
	log.Info("edge is serving", "addr", ln.Addr().String(), "store", store, "tls", cfg.TLS)
	fmt.Fprintf(stdout, `edge is ready at %[1]s
%[4]s  demo page:             %[1]s/   (open it in a browser)
  status page:           %[1]s/status
  browser client:        %[1]s/v1/client.js
  subscribe (SSE):       curl -N '%[1]s/v1/subscribe?channel=news' -H 'Accept: text/event-stream'
  subscribe (WebSocket): %[3]s://%[2]s/v1/subscribe?channel=news
  subscribe (long-poll): curl '%[1]s/v1/subscribe?channel=news'
  publish:               curl -X POST '%[1]s/v1/publish?channel=news' -d 'hello'
  history:               curl '%[1]s/v1/history?channel=news'
`, base, ln.Addr().String(), wsScheme, tlsLine(term))
	if err := srv.Run(ctx, ln); err != nil {
		log.Error("edge stopped", "err", err)
		return 1
	}
	return 0
}

// shutdownTelemetry flushes what the OTLP exporters still hold, for at
// most 5 seconds.
func shutdownTelemetry(tel *telemetry.Telemetry, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		log.Warn("telemetry: flushing failed", "err", err)
	}
}

// tlsLine is the banner's line about TLS, empty when TLS is off.
func tlsLine(term *edgetls.Terminator) string {
	if term.Summary() == "" {
		return ""
	}
	return "  tls:                   " + term.Summary() + "\n"
}

// logAccess says at start who may publish and subscribe.
func logAccess(cfg config, log *slog.Logger) {
	switch {
	case cfg.InsecurePublish:
		log.Warn("anyone may publish, from anywhere (--insecure-publish)")
	case len(cfg.PublishKeys) == 0:
		log.Warn("no publish key: publishing is refused from outside loopback except with a token's publish right; set --publish-key, or --insecure-publish")
	default:
		log.Info("publishing needs a publish key or a token's publish right", "keys", len(cfg.PublishKeys))
	}
	if cfg.tokensEnabled() {
		log.Info("subscribing needs a token, except to anonymous channels", "anonymous", cfg.Anonymous,
			"audiences", cfg.JWTAudiences, "issuer", cfg.JWTIssuer)
	}
}
