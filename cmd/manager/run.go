package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/launchdb/sockpin/internal/cli"
	"github.com/launchdb/sockpin/manager"
)

// reconcileTimeout bounds the start-up reconcile pass.
const reconcileTimeout = 60 * time.Second

// run parses args, reads the configuration through getenv, reconciles, and serves until
// ctx ends; then it stops accepting requests and lets in-flight operations finish for up
// to SHUTDOWN_TIMEOUT. Args starting with "health" run the health check instead.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "health" {
		return runHealth(ctx, args[1:], getenv, stdout, stderr)
	}
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.Usage = func() { usage(fs.Output()) }
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	cfg, err := manager.ConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	level := logLevel(getenv("LOG_LEVEL"))
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	if err := os.MkdirAll(cfg.ConfigDir, 0o700); err != nil {
		return fmt.Errorf("creating config directory: %w", err)
	}
	if err := manager.CheckConfigDir(cfg.ConfigDir); err != nil {
		return err
	}
	db, err := manager.OpenPlatformDB(cfg.PlatformDSN)
	if err != nil {
		return err
	}
	defer db.Close()
	docker, err := manager.NewEngine(cfg.DockerHost)
	if err != nil {
		return err
	}
	defer docker.Close()
	svc := manager.New(cfg, db, docker, log)

	// The server answers while start-up reconciles; operations wait for it.
	rctx, cancel := context.WithTimeout(ctx, cfg.CrashRecoveryWait+reconcileTimeout)
	defer cancel()
	recovered := svc.RecoverInBackground(rctx)
	reconciled := make(chan struct{})
	go func() {
		defer close(reconciled)
		if err := <-recovered; err != nil {
			log.Error("start-up reconcile incomplete", "error", err)
			return
		}
		log.Info("start-up reconcile finished")
	}()
	err = serve(ctx, cfg, svc.Handler(), log)
	cancel()
	<-reconciled
	if err != nil {
		return err
	}
	svc.Stopped()
	return nil
}

// serve listens on cfg.Port until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, cfg manager.Config, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		// Node's limit on a request's header section; net/http adds 4 KiB of slack.
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "docker_host", cfg.DockerHost,
		"image", cfg.Image, "config_dir", cfg.ConfigDir)

	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutting down: in-flight requests cut off after %s: %w",
			cfg.ShutdownTimeout, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

func logLevel(s string) slog.Level {
	var l slog.Level
	if l.UnmarshalText([]byte(s)) != nil {
		return slog.LevelInfo
	}
	return l
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: manager [-help]\n"+
		"       manager health [-port PORT] [-timeout D]   exit 0 when GET /health answers 200\n\n"+
		"Serves the LaunchDB PostgREST manager API. Configuration comes from the environment:\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	for _, e := range manager.EnvVars() {
		def := e.Default
		if e.Required {
			def = "(required)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Name, def, e.Doc)
	}
	fmt.Fprintf(tw, "LOG_LEVEL\tinfo\tdebug, info, warn or error\n")
	tw.Flush()
}
