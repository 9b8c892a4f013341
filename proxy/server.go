package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/launchdb/sockpin/filter"
)

// Config is everything the proxy needs to run.
type Config struct {
	// PolicyPath is the policy file, reloaded on Reload.
	PolicyPath string
	// Listen are the addresses serving the Engine API.
	Listen []Address
	// Upstream is the daemon's socket.
	Upstream Address
	// MetricsListen serves /metrics, /healthz and /readyz, never the API.
	MetricsListen Address
	// ReadHeaderTimeout bounds reading a request's headers (slow clients).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes kept-alive connections that stay idle.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (431 above).
	MaxHeaderBytes int
	// ShutdownTimeout is how long in-flight requests and streams may take
	// to finish after SIGTERM before they are cut.
	ShutdownTimeout time.Duration
	// DialTimeout bounds connecting to the daemon.
	DialTimeout time.Duration
	// MaxConnections bounds the client connections served at once; more
	// wait to be accepted. 0 means no bound.
	MaxConnections int
	// PolicyPoll, when set, is how often the policy file is checked for a
	// change, which then reloads it as SIGHUP does.
	PolicyPoll time.Duration
	Options
}

// Service is a running proxy: its listeners, handler and metrics.
type Service struct {
	cfg     Config
	log     *slog.Logger
	handler *Handler
	metrics *Metrics
	up      *Upstream
	reload  sync.Mutex
}

// NewService loads the policy and prepares the proxy; it does not listen
// yet.
func NewService(cfg Config, log *slog.Logger) (*Service, error) {
	p, err := filter.Load(cfg.PolicyPath)
	if err != nil {
		return nil, err
	}
	for _, w := range p.Warnings() {
		log.Warn("policy warning", "policy", cfg.PolicyPath, "warning", w.Error())
	}
	m := NewMetrics()
	up := NewUpstream(cfg.Upstream, cfg.DialTimeout)
	s := &Service{cfg: cfg, log: log, metrics: m, up: up,
		handler: New(p, up, log, m, cfg.Options)}
	log.Info("policy loaded", "policy", cfg.PolicyPath, "sha256", p.SHA256(), "generation", 1)
	return s, nil
}

// Handler returns the forwarding handler.
func (s *Service) Handler() *Handler { return s.handler }

// Reload loads the policy file again and swaps it in when it is valid. A
// policy with any problem is not loaded: the old one stays in force.
func (s *Service) Reload() error {
	s.reload.Lock()
	defer s.reload.Unlock()
	p, err := filter.Load(s.cfg.PolicyPath)
	if err != nil {
		s.metrics.reloads.WithLabelValues("failed").Inc()
		s.log.Error("policy reload failed; the previous policy stays in force",
			"policy", s.cfg.PolicyPath, "error", err.Error())
		return err
	}
	s.handler.SetPolicy(p)
	s.metrics.reloads.WithLabelValues("ok").Inc()
	s.log.Info("policy reloaded", "policy", s.cfg.PolicyPath, "sha256", p.SHA256(),
		"generation", s.handler.Generation())
	return nil
}

// Listen opens a listener; a unix socket is created with mode 0660,
// replacing a stale socket file.
func Listen(addr Address) (net.Listener, error) {
	if addr.Network == "unix" {
		if fi, err := os.Lstat(addr.Addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(addr.Addr)
		}
	}
	l, err := net.Listen(addr.Network, addr.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	if addr.Network == "unix" {
		if err := os.Chmod(addr.Addr, 0o660); err != nil {
			l.Close()
			return nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
	}
	return l, nil
}

// Run serves until ctx is done, then shuts down gracefully: listeners
// close, in-flight requests and streams get ShutdownTimeout to finish,
// then what is left is cut. reload receives a value for each reload
// request (SIGHUP).
func (s *Service) Run(ctx context.Context, reload <-chan struct{}) error {
	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	for _, a := range append(append([]Address{}, s.cfg.Listen...), s.cfg.MetricsListen) {
		l, err := Listen(a)
		if err != nil {
			closeAll()
			return err
		}
		listeners = append(listeners, l)
	}
	api := s.apiServer()
	// The metrics listener is for scrapers and health checks: few
	// connections, each held briefly, so a flood of them cannot use up the
	// descriptors the API needs.
	metrics := &http.Server{Handler: s.metricsMux(), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, len(listeners))
	for i, l := range listeners {
		serves := "engine-api"
		if i == len(listeners)-1 {
			serves = "metrics"
			l = netutil.LimitListener(l, metricsMaxConnections)
			go func() { errc <- metrics.Serve(l) }()
		} else {
			if s.cfg.MaxConnections > 0 {
				l = newLimitListener(l, s.cfg.MaxConnections)
			}
			go func() { errc <- api.serve(l) }()
		}
		s.log.Info("listening", "address", addrOf(l), "serves", serves)
	}
	var poll <-chan time.Time
	if s.cfg.PolicyPoll > 0 {
		ticker := time.NewTicker(s.cfg.PolicyPoll)
		defer ticker.Stop()
		poll = ticker.C
	}
	lastSeen := s.handler.Policy().SHA256()
	for {
		select {
		case <-reload:
			_ = s.Reload()
			continue
		case <-poll:
			// Reload when the file's content differs from what was last
			// seen, so a broken file is reported once, not every tick.
			if sum, err := fileSHA256(s.cfg.PolicyPath); err == nil && sum != lastSeen {
				lastSeen = sum
				_ = s.Reload()
			}
			continue
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				s.shutdown(api, metrics)
				return err
			}
		case <-ctx.Done():
			s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
			s.shutdown(api, metrics)
			return nil
		}
	}
}

func fileSHA256(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

func addrOf(l net.Listener) string {
	if l.Addr().Network() == "unix" {
		return "unix://" + l.Addr().String()
	}
	return "tcp://" + l.Addr().String()
}

func (s *Service) shutdown(api *httpServer, metrics *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := api.shutdown(ctx); err != nil {
			s.log.Warn("requests cut at shutdown deadline", "error", err.Error())
		}
	}()
	go func() {
		defer wg.Done()
		s.handler.WaitStreams(ctx)
	}()
	wg.Wait()
	_ = metrics.Close()
	s.up.CloseIdle()
}

func (s *Service) apiServer() *httpServer {
	return &httpServer{
		handler:           s.handler,
		readHeaderTimeout: s.cfg.ReadHeaderTimeout,
		idleTimeout:       s.cfg.IdleTimeout,
		maxHeaderBytes:    s.cfg.MaxHeaderBytes,
		log:               s.handler.auditUnread,
		acceptFailed: func(err error, wait time.Duration) {
			s.log.Warn("accepting a connection failed; retrying", "error", err,
				"wait", wait.String())
		},
	}
}

// metricsMaxConnections bounds the metrics listener's open connections.
const metricsMaxConnections = 32

func (s *Service) metricsMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`+"\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := s.up.Ping(ctx); err != nil {
			writeError(w, http.StatusServiceUnavailable, "sockpin: the Docker daemon is not ready: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, []byte(`{"status":"ready"}`+"\n"))
	})
	return mux
}
