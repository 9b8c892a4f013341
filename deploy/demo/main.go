// Command demo runs sockpin on this machine with nothing to configure, for `make demo`:
// the proxy and manager images from `make images` under deploy/compose.yaml, in front of
// the local Docker socket with the repository's policy.yaml, a throwaway PostgreSQL for
// the platform database, and the PgBouncer and PostgREST stand-ins. It spawns, restarts
// and destroys a project through the manager's API, shows `docker run --privileged`
// refused by the proxy, points at the audit log and the metrics, and removes everything
// it created when it ends, fails or is interrupted.
//
// Every Docker object it creates carries the label sockpin.demo.run=<run ID>. Objects
// with LaunchDB's fixed names (launchdb-pgbouncer, launchdb-internal, ...) that exist
// without that label make it refuse to start; ones left by an earlier demo are removed.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case errors.Is(err, errHelp):
		os.Exit(0)
	case interrupted:
		fmt.Fprintln(os.Stderr, "demo: interrupted")
		os.Exit(130)
	case err != nil:
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}
