package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/launchdb/sockpin/internal/cli"
	"github.com/launchdb/sockpin/proxy"
)

const proxyUsage = `Usage: proxy [flags]
       proxy policy check|explain|test|migrate ...   (see: proxy policy -h)
       proxy health [-metrics-listen ADDR]

sockpin's proxy serves the Docker Engine API and forwards to the daemon only
what the policy allows. Every flag falls back to the environment variable
named in brackets. ADDR is tcp://host:port or unix:///path (a unix socket is
created with mode 0660). SIGHUP reloads the policy; SIGTERM shuts down
gracefully.

Flags:
`

// env reads flag defaults from the environment and records what did not
// parse, so that a bad value is an error instead of a silent default.
type env struct {
	getenv func(string) string
	errs   []string
}

func (e *env) str(name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}

func (e *env) int(name string, def int64) int64 {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.errs = append(e.errs, fmt.Sprintf("%s=%q is not a whole number", name, v))
		return def
	}
	return n
}

func (e *env) dur(name string, def time.Duration) time.Duration {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Sprintf("%s=%q is not a duration such as 30s", name, v))
		return def
	}
	return d
}

// listFlag is a repeatable flag; the first explicit use replaces the
// default.
type listFlag struct {
	values []string
	set    bool
}

func (l *listFlag) String() string { return strings.Join(l.values, ",") }

func (l *listFlag) Set(v string) error {
	if !l.set {
		l.values, l.set = nil, true
	}
	l.values = append(l.values, v)
	return nil
}

func runProxy(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv}
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), proxyUsage)
		fs.PrintDefaults()
	}
	listen := &listFlag{values: strings.Split(e.str("SOCKPIN_LISTEN", "tcp://127.0.0.1:2375"), ",")}
	fs.Var(listen, "listen", "`ADDR` serving the Engine API, repeatable [SOCKPIN_LISTEN, comma-separated]")
	policy := fs.String("policy", e.str("SOCKPIN_POLICY", "policy.yaml"), "policy `FILE` [SOCKPIN_POLICY]")
	upstream := fs.String("upstream", e.str("SOCKPIN_UPSTREAM", "unix:///var/run/docker.sock"), "the daemon's `ADDR` [SOCKPIN_UPSTREAM]")
	metrics := fs.String("metrics-listen", e.str("SOCKPIN_METRICS_LISTEN", "tcp://127.0.0.1:9102"), "`ADDR` serving /metrics, /healthz and /readyz [SOCKPIN_METRICS_LISTEN]")
	maxBody := fs.Int64("max-body-bytes", e.int("SOCKPIN_MAX_BODY_BYTES", 1<<20), "largest request body; larger is refused with 413 [SOCKPIN_MAX_BODY_BYTES]")
	maxConns := fs.Int64("max-connections", e.int("SOCKPIN_MAX_CONNECTIONS", 4096), "client connections served at once; more wait to be accepted [SOCKPIN_MAX_CONNECTIONS]")
	bodyBudget := fs.Int64("body-budget-bytes", e.int("SOCKPIN_BODY_BUDGET_BYTES", 64<<20), "request body bytes held at once across all requests, counted as they arrive; a request beyond it gets 503 [SOCKPIN_BODY_BUDGET_BYTES]")
	maxHeader := fs.Int64("max-header-bytes", e.int("SOCKPIN_MAX_HEADER_BYTES", 64<<10), "largest request header section; larger is refused with 431 [SOCKPIN_MAX_HEADER_BYTES]")
	headerTimeout := fs.Duration("read-header-timeout", e.dur("SOCKPIN_READ_HEADER_TIMEOUT", 10*time.Second), "time a client has to send its headers [SOCKPIN_READ_HEADER_TIMEOUT]")
	bodyTimeout := fs.Duration("body-timeout", e.dur("SOCKPIN_BODY_TIMEOUT", 30*time.Second), "time a client has to send its body [SOCKPIN_BODY_TIMEOUT]")
	reqTimeout := fs.Duration("request-timeout", e.dur("SOCKPIN_REQUEST_TIMEOUT", 2*time.Minute), "limit for an ordinary request; streams (exec, wait, pull, stop) have none [SOCKPIN_REQUEST_TIMEOUT]")
	idleTimeout := fs.Duration("idle-timeout", e.dur("SOCKPIN_IDLE_TIMEOUT", 2*time.Minute), "idle kept-alive client connections are closed after this [SOCKPIN_IDLE_TIMEOUT]")
	shutdownTimeout := fs.Duration("shutdown-timeout", e.dur("SOCKPIN_SHUTDOWN_TIMEOUT", 30*time.Second), "time in-flight requests and streams get after SIGTERM [SOCKPIN_SHUTDOWN_TIMEOUT]")
	poll := fs.Duration("policy-poll", e.dur("SOCKPIN_POLICY_POLL", 0), "when set, check the policy file this often and reload it when it changes, as on SIGHUP [SOCKPIN_POLICY_POLL]")
	logLevel := fs.String("log-level", e.str("SOCKPIN_LOG_LEVEL", "info"), "debug, info, warn or error; audit lines of allowed requests are info [SOCKPIN_LOG_LEVEL]")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if len(e.errs) > 0 {
		return fmt.Errorf("environment: %s", strings.Join(e.errs, "; "))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level %q: want debug, info, warn or error", *logLevel)
	}
	cfg := proxy.Config{
		PolicyPath: *policy, ReadHeaderTimeout: *headerTimeout, IdleTimeout: *idleTimeout,
		MaxHeaderBytes: int(*maxHeader), ShutdownTimeout: *shutdownTimeout, DialTimeout: 5 * time.Second,
		PolicyPoll: *poll, MaxConnections: int(*maxConns),
		Options: proxy.Options{MaxBodyBytes: *maxBody, BodyTimeout: *bodyTimeout, RequestTimeout: *reqTimeout,
			BodyBudget: *bodyBudget},
	}
	var err error
	if cfg.Upstream, err = proxy.ParseAddress(*upstream); err != nil {
		return fmt.Errorf("-upstream: %w", err)
	}
	if cfg.MetricsListen, err = proxy.ParseAddress(*metrics); err != nil {
		return fmt.Errorf("-metrics-listen: %w", err)
	}
	for _, l := range listen.values {
		a, err := proxy.ParseAddress(strings.TrimSpace(l))
		if err != nil {
			return fmt.Errorf("-listen: %w", err)
		}
		cfg.Listen = append(cfg.Listen, a)
	}
	// Audit lines are written in batches every 50 ms, not one write each.
	logOut := proxy.NewLogWriter(stderr, 50*time.Millisecond)
	defer logOut.Close()
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level}))
	svc, err := proxy.NewService(cfg, log)
	if err != nil {
		return err
	}
	// Loading the policy and the libraries' start-up leave garbage behind;
	// give its memory back before idling.
	debug.FreeOSMemory()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	return svc.Run(ctx, reload)
}
