package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/launchdb/sockpin/internal/cli"
)

// runHealth asks the manager listening on this machine for GET /health and fails unless
// it answers 200. It is the image's HEALTHCHECK: the image has no shell and no curl. The
// port is PORT from the environment the manager itself reads (default 9000), so the check
// follows the same setting.
func runHealth(ctx context.Context, args []string, getenv func(string) string,
	stdout, stderr io.Writer,
) error {
	fs := flag.NewFlagSet("manager health", flag.ContinueOnError)
	def := 9000
	if p := getenv("PORT"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("health: PORT: want a port number, got %q", p)
		}
		def = n
	}
	port := fs.Int("port", def, "the manager's `PORT` [PORT]")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("health: unexpected arguments: %q", fs.Args())
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	url := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)) + "/health"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s: %s", resp.Status, body)
	}
	fmt.Fprintf(stderr, "%s\n", body)
	return nil
}
