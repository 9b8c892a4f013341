// Command load measures sockpin's proxy against the direct Docker socket,
// in one run, alternating between them: request rates, stream bandwidth,
// memory, and the cost of a refusal. It starts its own fixtures (stand-in
// image, containers) and removes them when it ends.
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

	"github.com/launchdb/sockpin/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

const usage = `Usage: load [flags]

Measures, in one run and alternating round by round, the direct Docker socket,
sockpin's proxy, and a bare byte relay (the cost of any extra hop, for
reference): GET /_ping and inspect with 16 clients, list of 31 containers,
create-start-stop-remove cycles, exec output and log stream bandwidth, idle
memory, and a refused request against an allowed one. Prints a table of
medians with ratios to the direct socket and p50/p99 latencies.

Fixtures carry the label sockpin.load.run and are removed at the end. Needs
the fixed names launchdb/postgrest:v1, launchdb-internal and
launchdb_postgrest-projects to be free.

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 4 && args[0] == "relay" {
		// The reference relay runs as a process of its own, as a real one
		// would: load relay NETWORK ADDRESS DAEMON-SOCKET.
		return serveRelay(ctx, args[1], args[2], args[3])
	}
	cfg := defaultConfig()
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	cfg.flags(fs)
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if cfg.smoke {
		cfg.shrink()
	}
	b, err := setup(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer b.teardown()
	results, err := b.measure(ctx)
	if err != nil {
		return err
	}
	printTable(stdout, cfg, results)
	return nil
}
