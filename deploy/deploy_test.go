// Package deploy_test checks what deploy/ ships: the compose file as Compose reads it,
// the images `make images` builds, run as the compose file runs them in front of the real
// daemon, `make demo`, and that every command README.md shows is exercised.
package deploy_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/launchdb/sockpin/internal/dockertest"
)

// root returns the module root; the tests run make and Compose from there.
func root(t *testing.T) string {
	t.Helper()
	return dockertest.ModuleRoot(t)
}

// command runs name with args in the module root, with env added to the environment,
// and returns its combined output and error.
func command(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// need fails or skips the test (see dockertest.Unavailable) when a program is missing.
func need(t *testing.T, program string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		dockertest.Unavailable(t, "%s is not installed", program)
	}
	return path
}

// images builds both images with `make images` under names of this test run, labelled
// with the run label, and removes them on cleanup. It returns the two tags.
func images(t *testing.T) (proxy, manager string) {
	t.Helper()
	cli := dockertest.Client(t)
	need(t, "docker")
	suffix := dockertest.RunID() + "-" + strings.ToLower(strings.ReplaceAll(
		filepath.Base(t.Name()), "_", "-"))
	proxy, manager = "sockpin-test/proxy:"+suffix, "sockpin-test/manager:"+suffix
	t.Cleanup(func() {
		for _, tag := range []string{proxy, manager} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cli.ImageRemove(ctx, tag, imageRemoveOptions)
			cancel()
		}
	})
	out, err := command(t, nil, "make", "images", "PROXY_IMAGE="+proxy,
		"MANAGER_IMAGE="+manager,
		"IMAGE_BUILD_FLAGS=--label "+dockertest.RunLabel+"="+dockertest.RunID())
	if err != nil {
		t.Fatalf("make images: %v\n%s", err, out)
	}
	return proxy, manager
}
