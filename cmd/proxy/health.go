package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/launchdb/sockpin/internal/cli"
	"github.com/launchdb/sockpin/proxy"
)

// runHealth asks a running proxy's metrics listener whether it is alive,
// for container healthchecks in an image that has no shell or curl.
func runHealth(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv}
	fs := flag.NewFlagSet("proxy health", flag.ContinueOnError)
	addr := fs.String("metrics-listen", e.str("SOCKPIN_METRICS_LISTEN", "tcp://127.0.0.1:9102"), "the proxy's metrics `ADDR` [SOCKPIN_METRICS_LISTEN]")
	ready := fs.Bool("ready", false, "ask /readyz (is the daemon answering?) instead of /healthz")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	a, err := proxy.ParseAddress(*addr)
	if err != nil {
		return err
	}
	// A listener on every address is asked on loopback.
	if host, port, err := net.SplitHostPort(a.Addr); err == nil && a.Network == "tcp" {
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			a.Addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, a.Network, a.Addr)
		}}}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://sockpin"+path, nil)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s: %s", resp.Status, body)
	}
	fmt.Fprintf(stdout, "%s", body)
	return nil
}
