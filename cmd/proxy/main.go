// Command proxy is sockpin's Docker socket filtering proxy: the only client
// of the Docker socket, it forwards only what policy.yaml allows.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "proxy:", err)
		os.Exit(1)
	}
}

// errUsage marks a command line that was already reported as wrong.
var errUsage = errors.New("usage")

// run dispatches to a subcommand; without one it runs the proxy.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "policy":
			return runPolicy(ctx, args[1:], getenv, stdout, stderr)
		case "health":
			return runHealth(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	return runProxy(ctx, args, getenv, stderr)
}
