package dockertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/launchdb/sockpin/internal/standin"
)

// PgBouncerName is the fixed name of the PgBouncer container.
const PgBouncerName = "launchdb-pgbouncer"

// PgBouncerINIPath is where pgbouncer.ini is bind-mounted in the container.
const PgBouncerINIPath = "/etc/pgbouncer/pgbouncer.ini"

// pgbouncerStateDir is where the stand-in writes its reload log in the
// container, a bind mount of a host directory.
const pgbouncerStateDir = standin.PgBouncerStateDir

// PgBouncerINI is the file a PgBouncer fixture starts with: the platform
// database in session mode, as LaunchDB ships it.
const PgBouncerINI = standin.PgBouncerINI

// pgbouncerImage creates the PgBouncer stand-in image (see standin.PgBouncer).
func pgbouncerImage(t testing.TB, cli *client.Client, tag string) {
	t.Helper()
	applets, err := standin.Applets(BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	importImage(t, cli, tag, standin.PgBouncer(readFile(t, Standin(t)), staticBusybox(t), applets))
}

// PgBouncer is a running PgBouncer stand-in container: BusyBox sh and the
// usual applets (no flock), pgbouncer.ini as a single-file bind mount of a
// host file, and a PID 1 that records every SIGHUP.
type PgBouncer struct {
	// ID is the container ID.
	ID string
	// Image is the tag of the stand-in image the container runs.
	Image string

	name   string
	ini    string
	reload string
}

// StartPgBouncer builds the PgBouncer stand-in image and starts container
// PgBouncerName on network net, labelled io.launchdb.role=pgbouncer and
// with the run label, with a host copy of PgBouncerINI bind-mounted as a
// single file at PgBouncerINIPath. Container and image are removed on
// cleanup.
func StartPgBouncer(t testing.TB, cli *client.Client, net string) *PgBouncer {
	t.Helper()
	return startPgBouncer(t, cli, net, PgBouncerName)
}

func startPgBouncer(t testing.TB, cli *client.Client, net, name string) *PgBouncer {
	t.Helper()
	tag := "sockpin-test/pgbouncer:" + RunID()
	pgbouncerImage(t, cli, tag)

	// Root in the container reads and writes these, and the test process
	// (root here) removes them.
	dir := t.TempDir()
	p := &PgBouncer{
		Image:  tag,
		name:   name,
		ini:    filepath.Join(dir, "pgbouncer.ini"),
		reload: filepath.Join(dir, "state", "reloads"),
	}
	if err := os.WriteFile(p.ini, []byte(PgBouncerINI), 0o644); err != nil {
		t.Fatalf("writing pgbouncer.ini: %v", err)
	}
	if err := os.Mkdir(filepath.Dir(p.reload), 0o755); err != nil {
		t.Fatalf("creating the reload log directory: %v", err)
	}
	p.ID = Container(t, cli, Spec{
		Name:    name,
		Image:   tag,
		Cmd:     []string{pgbouncerStateDir + "/reloads"},
		Labels:  map[string]string{"io.launchdb.role": "pgbouncer"},
		Network: net,
		Binds: []string{
			p.ini + ":" + PgBouncerINIPath,
			filepath.Dir(p.reload) + ":" + pgbouncerStateDir,
		},
	})
	WaitContainer(t, cli, p.ID, 10*time.Second, func(c container.InspectResponse) bool {
		return c.State != nil && c.State.Running
	})
	return p
}

// Name returns the container name, PgBouncerName.
func (p *PgBouncer) Name() string {
	return p.name
}

// INIFile returns the host path of the bind-mounted pgbouncer.ini.
func (p *PgBouncer) INIFile() string {
	return p.ini
}

// INI returns the current content of pgbouncer.ini.
func (p *PgBouncer) INI() string {
	data, err := os.ReadFile(p.ini)
	if err != nil {
		return ""
	}
	return string(data)
}

// DatabaseLines returns the lines of pgbouncer.ini that start with id
// followed by optional spaces and "=".
func (p *PgBouncer) DatabaseLines(id string) []string {
	var lines []string
	for _, line := range strings.Split(p.INI(), "\n") {
		rest, ok := strings.CutPrefix(line, id)
		if ok && strings.HasPrefix(strings.TrimLeft(rest, " "), "=") {
			lines = append(lines, line)
		}
	}
	return lines
}

// Reloads returns how many SIGHUPs the PgBouncer stand-in has recorded.
// Signal delivery is asynchronous: use WaitReloads after sending one.
func (p *PgBouncer) Reloads() int {
	data, err := os.ReadFile(p.reload)
	if err != nil {
		return 0
	}
	return strings.Count(string(data), "\n")
}

// WaitReloads waits up to five seconds until at least want SIGHUPs are
// recorded and fails the test otherwise.
func (p *PgBouncer) WaitReloads(t testing.TB, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.Reloads() < want {
		if time.Now().After(deadline) {
			t.Fatalf("PgBouncer reloads: got %d, want at least %d", p.Reloads(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
