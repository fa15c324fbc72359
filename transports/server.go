package transports

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/trace"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/edge/auth"
	"github.com/edgeworks/edge/transports/client"
	"github.com/edgeworks/edge/transports/internal/hijack"
	"github.com/edgeworks/edge/transports/internal/idle"
	"github.com/edgeworks/edge/transports/metrics"
	"github.com/edgeworks/edge/transports/status"
)

// Server serves the edge's HTTP surface on one listener: subscribe (WS,
// SSE, long-poll), publish, history and health. Create it with New, start
// it with Run.
type Server struct {
	cfg      Config
	broker   edge.Broker
	store    Store // nil: the embedded store
	hub      *edge.Hub
	log      *slog.Logger
	upgrader websocket.Upgrader
	handler  http.Handler
	access   *access
	tls      *tls.Config // nil: plain HTTP
	metrics  *metrics.Metrics
	status   *status.Status // samples for the status page; Run runs it

	telemetry  Telemetry
	tracer     trace.Tracer                             // nil: no spans
	certExpiry atomic.Pointer[func() (time.Time, bool)] // set by UseTLS
	stopping   atomic.Bool                              // the drain delay began: /readyz answers 503
	compressed atomic.Int64                             // open compressed streams (countCompressed)

	publishes *rateLimiter // publishes per key, subject or client IP; nil: no bound
	resumes   *admission   // resuming subscribes of the node (ResumeRate)

	// hijacked tracks WebSocket and HTTP/1 SSE connections and parked
	// long-polls, which http.Server.Shutdown does not wait for.
	hijacked sync.WaitGroup
	// writers write what connections' sessions queue (see writeTurn).
	writers *writers
	// idle parks the readers of idle hijacked SSE and WebSocket
	// connections; its goroutine ends with the last of them.
	idle idle.Watcher
	// recycler is Run's listener, which takes answered long-poll
	// connections back; nil when the handler runs elsewhere. Atomic, as
	// Handler may serve while Run starts.
	recycler atomic.Pointer[hijack.Listener]
}

// New returns a server for cfg, with its zero fields set to their
// defaults (see Config.WithDefaults), that stores and relays messages
// through broker.
//
// It fails when cfg.Validate does, or when the token keys cfg names cannot
// be used (an unreadable or invalid key file). Its metrics and traces go
// where WithTelemetry says; WithStore names broker's backing store and
// counts its round trips.
func New(cfg Config, broker edge.Broker, log *slog.Logger, opts ...Option) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("transports: %w", err)
	}
	log = logWithRequestID(log)
	acc, err := newAccess(cfg, log)
	if err != nil {
		return nil, err
	}
	if patterns := cfg.Presence; len(patterns) > 0 {
		if _, ok := broker.(edge.Presence); !ok {
			return nil, fmt.Errorf("transports: Presence: the store (%T) keeps no presence", broker)
		}
		cfg.Hub.Presence = func(channel string) bool { return auth.MatchAny(patterns, channel) }
	}
	s := &Server{
		cfg:     cfg,
		broker:  broker,
		hub:     edge.NewHub(broker, cfg.Hub, log),
		log:     log,
		access:  acc,
		writers: newWriters(),
	}
	for _, o := range opts {
		o(s)
	}
	s.tracer = newTracer(s.telemetry.Tracers)
	s.hub.SetTracer(s.tracer)
	s.hub.SetWakeAll(s.writers.wakeAll)
	m, err := metrics.New(s.telemetry.Meters, metrics.Observed{
		Sessions:      func() int64 { return int64(s.hub.Sessions()) },
		SlowConsumers: s.hub.SlowConsumers,
		AuthRefusals:  s.access.failures.Load,
		Compressed:    s.compressed.Load,
		Presence:      s.hub.PresenceFailures,
		Hub: func() (st [metrics.NumTransports]edge.SessionStats) {
			s.hub.Stats(st[:])
			return st
		},
		CertExpiry: func() (time.Time, bool) {
			if f := s.certExpiry.Load(); f != nil {
				return (*f)()
			}
			return time.Time{}, false
		},
	})
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	s.metrics = m
	s.status = status.New(s.statusReading, log)
	if s.store != nil {
		s.store.OnRoundTrip(m.StoreRoundTrip)
	}
	if cfg.PublishRate > 0 {
		s.publishes = newRateLimiter(cfg.PublishRate)
	}
	s.resumes = newAdmission(cfg.ResumeRate)
	s.upgrader = websocket.Upgrader{
		// ReadBufferSize 0: gorilla reads through the buffered reader
		// hijack.UpgradeResponse makes, which the edge keeps (see hijack.SkipPong).
		WriteBufferSize:   4096,
		WriteBufferPool:   &sync.Pool{},
		EnableCompression: true,
		CheckOrigin:       s.checkOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			if status == http.StatusForbidden {
				writeError(w, fmt.Errorf("%w: websocket from origin %q; the edge allows its own origin and --cors-origin", edge.ErrForbidden, edge.Clip(r.Header.Get("Origin"))))
				return
			}
			writeError(w, fmt.Errorf("%w: websocket upgrade: %v", edge.ErrBadRequest, reason))
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/subscribe", s.handleSubscribe)
	mux.HandleFunc("/v1/publish", s.handlePublish)
	mux.HandleFunc("/v1/publish/batch", s.handlePublishBatch)
	mux.HandleFunc("/v1/history", s.handleHistory)
	mux.HandleFunc("/v1/presence", s.handlePresence)
	mux.HandleFunc("/healthz", s.handleHealth)
	mux.HandleFunc("/readyz", s.handleReady)
	mux.HandleFunc("/metrics", getOnly(s.serveMetrics))
	mux.HandleFunc("/status", getOnly(s.status.ServePage))
	mux.HandleFunc("/status/events", getOnly(s.status.ServeEvents))
	mux.HandleFunc("/v1/client.js", getOnly(client.ServeScript))
	mux.HandleFunc("/v1/client.d.ts", getOnly(client.ServeTypes))
	mux.HandleFunc("/{$}", getOnly(client.ServeDemo))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fmt.Errorf("%w: no endpoint at %s", edge.ErrNotFound, edge.Clip(r.URL.Path)))
	})
	s.handler = requestIDs(log, hsts(cfg.HSTS, cors(cfg.CORSOrigin, limitHead(checkQuery(mux)))))
	return s, nil
}

// UseTLS makes Run serve TLS with c (HTTP/2 and HTTP/1.1 by ALPN); expiry,
// when not nil, tells the metrics when the earliest certificate served
// expires. Call it before Run.
func (s *Server) UseTLS(c *tls.Config, expiry func() (time.Time, bool)) {
	s.tls = c
	if expiry != nil {
		s.certExpiry.Store(&expiry)
	}
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.telemetry.Metrics == nil {
		writeError(w, fmt.Errorf("%w: this server exports no metrics (transports.WithTelemetry sets them up)", edge.ErrNotFound))
		return
	}
	s.telemetry.Metrics.ServeHTTP(w, r)
}

// Hub returns the server's hub.
func (s *Server) Hub() *edge.Hub { return s.hub }

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves on ln until ctx is done, then drains: it refuses new
// subscribers, tells every connected client to reconnect (spread over
// time, with jittered retry hints), waits for connections to finish within
// Config.DrainTimeout, and stops the broker. It returns when every
// goroutine it started has ended.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	brokerCtx, stopBroker := context.WithCancel(context.Background())
	defer stopBroker()
	brokerDone := make(chan error, 1)
	go func() { brokerDone <- s.broker.Run(brokerCtx) }()
	if v := s.access.verifier; v != nil {
		verifierDone := make(chan struct{})
		go func() { v.Run(brokerCtx); close(verifierDone) }()
		defer func() { stopBroker(); <-verifierDone }()
	}

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: headTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBlock - headerSlack,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		Protocols:         new(http.Protocols),
		ConnContext:       withConnLimits,
	}
	// HTTP/2 without TLS (prior knowledge) too, so SSE and long-poll
	// behind an h2c proxy are not limited to six streams per host.
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	// Connections are counted below TLS; net/http must see *tls.Conn.
	ln = newConnLimiter(ln, s.cfg.MaxConns, s.cfg.MaxConnsPerIP, s.tls == nil)
	var lane *publishLane
	var sort func(*hijack.Listener, net.Conn)
	switch {
	case s.tls != nil:
		ln = tls.NewListener(ln, s.tls)
	case laneSupported:
		lane = newPublishLane(s)
		sort = lane.sort
	}
	rec := hijack.NewListener(ln, sort)
	s.recycler.Store(rec)
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(rec) }()
	statusCtx, stopStatus := context.WithCancel(ctx)
	statusDone := make(chan struct{})
	go func() { s.status.Run(statusCtx); close(statusDone) }()

	var err error
	select {
	case <-ctx.Done():
		s.delayDrain(serveDone)
	case err = <-serveDone:
		serveDone <- err
	case err = <-brokerDone:
		err = fmt.Errorf("broker stopped: %w", err)
		brokerDone <- nil
	}
	// The status page's streams end before Shutdown, which waits for them.
	stopStatus()
	<-statusDone

	drainCtx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	s.log.Info("draining", "sessions", s.hub.Sessions(), "timeout", s.cfg.DrainTimeout)
	srv.SetKeepAlivesEnabled(false)
	if lane != nil {
		lane.close()
	}
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- srv.Shutdown(drainCtx) }()
	s.hub.Shutdown(drainCtx, min(s.cfg.DrainTimeout/2, 5*time.Second))
	if e := <-shutdownDone; e != nil {
		srv.Close()
	}
	hijackedDone := make(chan struct{})
	go func() { s.hijacked.Wait(); close(hijackedDone) }()
	select {
	case <-hijackedDone:
	case <-drainCtx.Done():
		<-hijackedDone // connections have write deadlines; they end soon
	}
	rec.Wait() // the publish lane's connections
	s.writers.stopAndWait()
	s.idle.Wait()
	s.hub.StopPresence(drainCtx) // the sessions' leaves, before the store stops
	if e := <-serveDone; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	stopBroker()
	<-brokerDone
	s.log.Info("stopped")
	return err
}

// maxHeaderBlock bounds the request line and headers of a request, in
// bytes; a larger block is answered 431.
//
// net/http reads 4096 bytes beyond http.Server.MaxHeaderBytes (headerSlack,
// room for its read buffer) before it refuses a header block, so
// MaxHeaderBytes is set that much under maxHeaderBlock. It is still a few
// bytes loose: on a connection's first request it has already read the 14
// bytes it peeks at for an HTTP/2 preface, and it takes a block cut just
// before its last LF as whole. limitHead counts what it let through and
// refuses a block over maxHeaderBlock, so the bound holds to the byte for
// requests written as clients write them. HTTP/2 derives its own limit
// from MaxHeaderBytes, in its own unit (each field's name and value and
// 32 bytes, with 320 bytes of slack): about 12 KiB.
const maxHeaderBlock = 16 << 10

// headerSlack is what net/http reads beyond http.Server.MaxHeaderBytes.
const headerSlack = 4096

// newSession opens a hub session for a subscriber over t. A long-poll's
// session is closed first on drain: its answer ends the request at once.
func (s *Server) newSession(t metrics.Transport) (*edge.Session, error) {
	sess, err := s.hub.NewSession()
	if err != nil {
		return nil, err
	}
	sess.SetKind(uint8(t))
	if t == metrics.Poll {
		sess.CloseFirst()
	}
	return sess, nil
}

// delayDrain keeps serving for Config.DrainDelay with /readyz answering
// 503, unless serving ends sooner.
func (s *Server) delayDrain(serveDone chan error) {
	if s.cfg.DrainDelay <= 0 {
		return
	}
	s.stopping.Store(true)
	s.log.Info("not ready; draining after the delay", "delay", s.cfg.DrainDelay)
	t := time.NewTimer(s.cfg.DrainDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case err := <-serveDone:
		serveDone <- err
	}
}

func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || s.cfg.CORSOrigin == "*" {
		return true
	}
	if originAllowed(splitOrigins(s.cfg.CORSOrigin), origin) {
		return true
	}
	return sameOrigin(r, origin)
}

// reconnectDelay is the jittered delay a client is told to wait before it
// reconnects after d, so that a fleet's clients do not all come back at
// once.
func (s *Server) reconnectDelay(d edge.Disconnect) time.Duration {
	spread := time.Second
	if d == edge.DisconnectShutdown {
		spread = 5 * time.Second
	}
	return s.cfg.SSERetry + rand.N(spread)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "sessions": s.hub.Sessions(), "auth_refusals": s.access.failures.Load()})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if s.stopping.Load() || s.hub.ShuttingDown() {
		writeError(w, edge.ErrShuttingDown)
		return
	}
	if err := s.broker.Ready(ctx); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
