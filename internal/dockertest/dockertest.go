// Package dockertest holds test helpers that run against the real Docker
// daemon on /var/run/docker.sock: a client, labelled fixtures that clean up
// after themselves, stand-in images for PostgREST and PgBouncer built locally
// FROM scratch, the proxy binary as a subprocess, and a recording relay in
// front of the daemon socket.
//
// Every object a helper creates carries the label RunLabel=RunID(), one ID
// per test process, and is removed in t.Cleanup even when the test fails.
// Objects with fixed names that exist without that label are never touched:
// the helper fails the test instead. Packages that use these helpers run
// one at a time (go test -p 1) because the fixed names are shared.
//
// With CI=true an unreachable daemon fails the test; otherwise it skips.
package dockertest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/launchdb/sockpin/internal/daemonlock"
)

// SocketPath is the Docker daemon socket the helpers talk to.
const SocketPath = "/var/run/docker.sock"

// RunLabel is the label key every test-created Docker object carries; its
// value is RunID().
const RunLabel = "sockpin.test.run"

// FixtureLabel marks containers made by Container; its value is RunID().
// Containers inherit their image's labels, so a container the code under
// test creates from a stand-in image carries RunLabel too, but never
// FixtureLabel: this label tells fixtures and such containers apart.
const FixtureLabel = "sockpin.test.fixture"

// callTimeout bounds every daemon call a helper makes.
const callTimeout = 30 * time.Second

var runID = sync.OnceValue(func() string {
	return randomString(12)
})

// RunID returns the random ID of this test process, the value of RunLabel
// on every object it creates.
func RunID() string {
	return runID()
}

// Labels returns a fresh map holding the run label, for objects a test
// creates itself.
func Labels() map[string]string {
	return map[string]string{RunLabel: RunID()}
}

// CI reports whether the environment asks for strict mode (CI=true), in which
// missing infrastructure fails tests instead of skipping them.
func CI() bool {
	return os.Getenv("CI") == "true"
}

// Unavailable fails the test under CI=true and skips it otherwise, for a
// test whose infrastructure (daemon, binaries) is missing.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("%s (CI=true: missing infrastructure is a failure)", msg)
	}
	t.Skipf("%s (skipping; with CI=true this fails)", msg)
}

// Client returns a client for the daemon on SocketPath with API version
// negotiation, closed on cleanup. An unreachable daemon fails the test under
// CI=true and skips it otherwise.
//
// The first call in a test process also takes an exclusive lock shared by
// every sockpin test process on the machine, held until the process exits:
// tests use fixed names (launchdb-pgbouncer, launchdb-internal), so two
// test processes must not use the daemon at the same time.
func Client(t testing.TB) *client.Client {
	t.Helper()
	lockDaemon(t)
	return clientFor(t, SocketPath)
}

var (
	daemonLockOnce sync.Once
	daemonLockErr  error
)

// lockDaemon takes the machine-wide test lock once per process.
func lockDaemon(t testing.TB) {
	t.Helper()
	daemonLockOnce.Do(func() {
		// The lock is never released: it lasts as long as the process.
		_, daemonLockErr = daemonlock.Acquire(func() {
			t.Logf("waiting for another sockpin process to finish with the Docker daemon (%s)",
				daemonlock.Path())
		})
	})
	if daemonLockErr != nil {
		t.Fatalf("taking the Docker test lock: %v", daemonLockErr)
	}
}

func clientFor(t testing.TB, socket string) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(
		client.WithHost("unix://"+socket),
		client.WithAPIVersionNegotiation(),
	)
	if err != nil {
		t.Fatalf("creating Docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		Unavailable(t, "Docker daemon not reachable on %s: %v", socket, err)
	}
	return cli
}

// callCtx returns a context bounded by callTimeout for one daemon call.
func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
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

// ProjectID returns a random project ID, `proj_` and 16 characters of
// [a-z0-9], so names derived from it are unique to the run.
func ProjectID() string {
	return "proj_" + randomString(16)
}

// ownership describes an existing object's run label for error messages.
func ownership(labels map[string]string) string {
	v, ok := labels[RunLabel]
	switch {
	case !ok:
		return "it has no " + RunLabel + " label (not created by a test)"
	case v == RunID():
		return "it was created earlier by this test run"
	default:
		return fmt.Sprintf("it carries %s=%s: another test process (running now, or "+
			"killed before its cleanup) made it", RunLabel, v)
	}
}

// ours reports whether labels carry this run's label.
func ours(labels map[string]string) bool {
	return labels[RunLabel] == RunID()
}

var (
	moduleRootOnce sync.Once
	moduleRootDir  string
	moduleRootErr  error
)

// ModuleRoot returns the directory of the sockpin module's go.mod, found
// with `go env GOMOD` from the test's working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	moduleRootOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			moduleRootErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			moduleRootErr = fmt.Errorf("not inside a Go module")
			return
		}
		moduleRootDir = filepath.Dir(gomod)
	})
	if moduleRootErr != nil {
		t.Fatalf("finding the module root: %v", moduleRootErr)
	}
	return moduleRootDir
}

const workDirPrefix = "sockpin-test-"

var (
	workDirOnce sync.Once
	workDirPath string
	workDirErr  error
)

// processDir returns a directory that lives as long as the test process, for
// binaries built once per process. Nothing runs at process exit, so each new
// process removes the directories of earlier processes that have exited
// (each directory records its owner's PID).
func processDir(t testing.TB) string {
	t.Helper()
	workDirOnce.Do(func() {
		sweepProcessDirs()
		workDirPath, workDirErr = os.MkdirTemp("", workDirPrefix)
		if workDirErr != nil {
			return
		}
		pid := []byte(strconv.Itoa(os.Getpid()))
		workDirErr = os.WriteFile(filepath.Join(workDirPath, "pid"), pid, 0o644)
	})
	if workDirErr != nil {
		t.Fatalf("creating the per-process directory: %v", workDirErr)
	}
	return workDirPath
}

func sweepProcessDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), workDirPrefix+"*"))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, "pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(string(data))
		if err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(dir)
		}
	}
}
