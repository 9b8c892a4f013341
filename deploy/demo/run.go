package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/client"
)

// errHelp is returned for -help, after the usage text.
var errHelp = errors.New("help requested")

// options are the demo's flags. The defaults are what `make demo` needs.
type options struct {
	check        bool
	socket       string
	proxyImage   string
	managerImage string
	standin      string
	pgBin        string
	pgImage      string
	label        string
	locked       bool
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.BoolVar(&o.check, "check", false,
		"only check that the Docker daemon answers, and exit")
	fs.StringVar(&o.socket, "socket", "/var/run/docker.sock", "the Docker daemon's `socket`")
	fs.StringVar(&o.proxyImage, "proxy-image", "sockpin/proxy:latest",
		"proxy `image` built by make images")
	fs.StringVar(&o.managerImage, "manager-image", "sockpin/manager:latest",
		"manager `image` built by make images")
	fs.StringVar(&o.standin, "standin", "bin/standin",
		"the stand-in `program` (make bin/standin)")
	fs.StringVar(&o.pgBin, "pg-bin", "/usr/lib/postgresql/15/bin",
		"`directory` of the PostgreSQL server binaries; without them, -pg-image runs instead")
	fs.StringVar(&o.pgImage, "pg-image", "postgres:15-alpine",
		"PostgreSQL `image` used when -pg-bin has no binaries")
	fs.StringVar(&o.label, "label", "",
		"another `KEY=VALUE` label for every Docker object the demo creates")
	fs.BoolVar(&o.locked, "locked", false,
		"the caller already holds the sockpin Docker lock ("+lockPath()+")")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, errHelp
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.label != "" && !strings.Contains(o.label, "=") {
		return o, fmt.Errorf("-label: want KEY=VALUE, got %q", o.label)
	}
	return o, nil
}

// run checks the daemon, takes the lock, and runs the demo, cleaning up after it.
func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFlags(args, out)
	if err != nil {
		return err
	}
	cli, version, err := connect(ctx, o.socket)
	if err != nil {
		return err
	}
	defer cli.Close()
	if o.check {
		return checkTools()
	}
	if err := checkTools(); err != nil {
		return err
	}

	p := newPrinter(out)
	p.step("Docker %s on %s", version, o.socket)
	if !o.locked {
		if err := lockDaemon(ctx, p); err != nil {
			return err
		}
	}
	d, err := newDemo(o, cli, p)
	if err != nil {
		return err
	}
	start := time.Now()
	err = d.run(ctx)
	if err == nil {
		p.step("demo finished in %s; removing what it created",
			time.Since(start).Round(time.Second))
	} else if ctx.Err() == nil {
		p.step("demo failed; removing what it created")
	} else {
		p.step("interrupted; removing what the demo created")
	}
	if cerr := d.cleanup(); cerr != nil {
		if err == nil {
			return cerr
		}
		// The run's own error (or the interrupt) is what the demo exits
		// with; what could not be removed is said here.
		p.step("could not remove everything: %v", cerr)
		p.detail("the next make demo removes it, or: docker ps -a --filter label=%s=%s",
			runLabel, d.runID)
	}
	return err
}

// connect returns a client for the daemon on socket and the daemon's version, or one
// clear error saying the daemon is missing.
func connect(ctx context.Context, socket string) (*client.Client, string, error) {
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+socket),
		client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, "", fmt.Errorf("creating a Docker client: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := cli.ServerVersion(cctx)
	if err != nil {
		cli.Close()
		return nil, "", fmt.Errorf("the Docker daemon does not answer on %s "+
			"(is it installed and running, and may this user use its socket?)", socket)
	}
	return cli, v.Version, nil
}

// checkTools makes sure the commands the demo runs are installed.
func checkTools() error {
	if _, err := exec.LookPath("docker"); err != nil {
		return errors.New("the docker command is not installed (make images needs it)")
	}
	if _, err := composeCommand(); err != nil {
		return err
	}
	return nil
}

// composeCommand returns the Compose command: docker-compose, or the docker compose plugin.
func composeCommand() ([]string, error) {
	if path, err := exec.LookPath("docker-compose"); err == nil {
		return []string{path}, nil
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, nil
	}
	return nil, errors.New("neither docker-compose nor the docker compose plugin is installed")
}

// randomString returns n random characters from [a-z0-9].
func randomString(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// repoFile returns the absolute path of a file of the repository, which the demo
// expects as its working directory (make runs it there).
func repoFile(name string) (string, error) {
	path, err := filepath.Abs(name)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s not found: run the demo from the repository (make demo)", name)
	}
	return path, nil
}
