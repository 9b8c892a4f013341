// Command fakeproxy honours the proxy's command-line contract without any
// policy, so dockertest can test StartProxy on its own: it forwards every
// request from -listen to -upstream, writes one JSON line with a "decision"
// key per request to stderr, serves a counter on -metrics-listen, and exits
// 0 on SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fakeproxy:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fakeproxy", flag.ContinueOnError)
	policy := fs.String("policy", "", "policy file (must exist)")
	listen := fs.String("listen", "", "tcp://host:port")
	upstream := fs.String("upstream", "", "unix:///path")
	metrics := fs.String("metrics-listen", "", "tcp://host:port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := os.Stat(*policy); err != nil {
		return fmt.Errorf("reading policy: %w", err)
	}
	sock := strings.TrimPrefix(*upstream, "unix://")
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var count atomic.Int64

	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: "docker"})
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			},
		},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
		log.Info("request", "method", r.Method, "path", r.URL.Path, "decision", "allow")
		rp.ServeHTTP(w, r)
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "fakeproxy_requests_total %d\n", count.Load())
	})

	errc := make(chan error, 2)
	servers := []*http.Server{{Handler: handler}, {Handler: mux}}
	for i, addr := range []string{*listen, *metrics} {
		ln, err := net.Listen("tcp", strings.TrimPrefix(addr, "tcp://"))
		if err != nil {
			return err
		}
		go func() { errc <- servers[i].Serve(ln) }()
	}
	log.Info("listening", "listen", *listen, "upstream", *upstream)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	for _, s := range servers {
		s.Close()
	}
	log.Info("stopped")
	return nil
}
