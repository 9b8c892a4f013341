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
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(exitCode(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr), os.Stderr))
}

// exitCode reports err on stderr and returns the exit status: 0, 2 for a
// wrong command line, 1 for any other failure.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		if err != errUsage { // errUsage alone was reported where it arose
			fmt.Fprintln(stderr, "proxy:", strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		}
		return 2
	default:
		fmt.Fprintln(stderr, "proxy:", err)
		return 1
	}
}

// errUsage marks a wrong command line. Alone, it was reported already;
// wrapped, its message says what is wrong.
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
	return runProxy(ctx, args, getenv, stdout, stderr)
}
