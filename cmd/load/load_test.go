package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/launchdb/sockpin/internal/dockertest"
)

// TestMain lets the test binary serve as the reference relay, which the
// tool starts by running its own executable.
func TestMain(m *testing.M) {
	if len(os.Args) == 5 && os.Args[1] == "relay" {
		if err := serveRelay(context.Background(), os.Args[2], os.Args[3], os.Args[4]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs the load tool for a few seconds against the real daemon
// and checks that every scenario produced figures for every side, so the
// tool keeps working. It asserts no target: a smoke run is too short to
// measure.
func TestSmoke(t *testing.T) {
	dockertest.Client(t)
	proxy := dockertest.BuildBinary(t, "proxy")
	standin := dockertest.Standin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	err := run(ctx, []string{"-smoke", "-proxy", proxy, "-standin", standin,
		"-policy", "../../policy.yaml"}, &out, &log)
	if err != nil {
		t.Fatalf("load -smoke: %v\n%s", err, log.String())
	}
	table := out.String()
	for _, row := range []string{"GET /_ping", "GET /containers/{id}/json", "GET /containers/json",
		"create+start+stop+remove", "exec output stream", "logs stream", "proxy RSS, idle",
		"idle connections", "refused GET /info"} {
		line := ""
		for _, l := range strings.Split(table, "\n") {
			if strings.Contains(l, row) {
				line = l
			}
		}
		if line == "" {
			t.Errorf("the table has no row %q:\n%s", row, table)
			continue
		}
		if strings.Contains(line, "| 0 ") || strings.Contains(line, " 0.00 ") && !strings.Contains(line, "MiB") {
			t.Errorf("row %q has an empty figure: %s", row, line)
		}
	}
}
