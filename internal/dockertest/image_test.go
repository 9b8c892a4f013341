package dockertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

func TestStandinImageHealthcheck(t *testing.T) {
	cli := Client(t)
	tag := standinForTest(t, cli)
	net := testName("net")
	Network(t, cli, net)

	// The manager writes configs on the host side of the config volume.
	dir := t.TempDir()
	vol := testName("projects")
	BindVolume(t, cli, vol, dir)
	readyConf := "# PostgREST config for proj_aaaaaaaaaaaaaaaa\njwt-secret = \"s\"\n"
	os.WriteFile(filepath.Join(dir, "ready.conf"), []byte(readyConf), 0o600)
	os.WriteFile(filepath.Join(dir, "never.conf"), []byte("jwt-secret = \"standin-never-ready\"\n"),
		0o600)
	sum := sha256.Sum256([]byte(readyConf))

	tests := []struct {
		name       string
		config     string
		wantHealth string
		wantOutput string
	}{
		{name: "ready-config-is-healthy", config: "ready.conf", wantHealth: "healthy",
			wantOutput: hex.EncodeToString(sum[:])},
		{name: "never-ready-secret-is-unhealthy", config: "never.conf", wantHealth: "unhealthy",
			wantOutput: "returned error: 503"},
		{name: "missing-config-is-unhealthy", config: "missing.conf", wantHealth: "unhealthy",
			wantOutput: "returned error: 503"},
	}
	ids := make([]string, len(tests))
	// Start them all first: the healthchecks then run side by side.
	for i, tt := range tests {
		ids[i] = Container(t, cli, Spec{
			Name:    testName("postgrest"),
			Image:   tag,
			Cmd:     []string{"/etc/postgrest/projects/" + tt.config},
			Network: net,
			Binds:   []string{vol + ":/etc/postgrest/projects:ro"},
			Healthcheck: &container.HealthConfig{
				Test:     []string{"CMD", "curl", "-f", "http://localhost:3000/"},
				Interval: 200 * time.Millisecond,
				Timeout:  2 * time.Second,
				Retries:  2,
			},
		})
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			settled := func(c container.InspectResponse) bool {
				h := c.State.Health
				return h != nil && (h.Status == "healthy" || h.Status == "unhealthy")
			}
			got := WaitContainer(t, cli, ids[i], 15*time.Second, settled)
			h := got.State.Health
			if h.Status != tt.wantHealth {
				t.Errorf("health: got %q, want %q", h.Status, tt.wantHealth)
			}
			last := h.Log[len(h.Log)-1].Output
			if !strings.Contains(last, tt.wantOutput) {
				t.Errorf("last healthcheck output: got %q, want it to contain %q", last,
					tt.wantOutput)
			}
		})
	}
}

func TestStandinImageServesOnTheNetwork(t *testing.T) {
	cli := Client(t)
	tag := standinForTest(t, cli)
	net := testName("net")
	Network(t, cli, net)
	server := testName("postgrest")
	Container(t, cli, Spec{Name: server, Image: tag, Cmd: []string{"/nonexistent.conf"},
		Network: net})
	client := Container(t, cli, Spec{Name: testName("client"), Image: tag,
		Entrypoint: []string{"/app", "sleep"}, Network: net})

	// Docker DNS on a user network resolves the container name, as
	// platform-api reaches http://postgrest-<projectId>:3000.
	var res ExecResult
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		res = Exec(t, cli, client, "curl", "-f", "http://"+server+":3000/")
		if strings.Contains(res.Stdout, "standin not ready") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res.ExitCode != 1 || !strings.Contains(res.Stdout, "standin not ready") {
		t.Errorf("curl by container name: got exit %d, stdout %q, stderr %q; want exit 1 "+
			"and the 503 body", res.ExitCode, res.Stdout, res.Stderr)
	}
}

func TestPgBouncerStandin(t *testing.T) {
	cli := Client(t)
	ctx := context.Background()
	net := testName("net")
	Network(t, cli, net)
	// A random name keeps this test clear of other packages' launchdb-pgbouncer.
	pgb := startPgBouncer(t, cli, net, testName("pgbouncer"))

	c, err := cli.ContainerInspect(ctx, pgb.ID)
	if err != nil {
		t.Fatalf("inspecting PgBouncer: %v", err)
	}
	if got := c.Config.Labels["io.launchdb.role"]; got != "pgbouncer" {
		t.Errorf("role label: got %q, want %q", got, "pgbouncer")
	}
	if got := c.Config.Labels[RunLabel]; got != RunID() {
		t.Errorf("run label: got %q, want %q", got, RunID())
	}
	if _, ok := c.NetworkSettings.Networks[net]; !ok {
		t.Errorf("networks: got %v, want %q",
			slices.Collect(maps.Keys(c.NetworkSettings.Networks)), net)
	}
	if got := pgb.INI(); got != PgBouncerINI {
		t.Errorf("initial INI: got %q, want PgBouncerINI", got)
	}

	t.Run("exec", func(t *testing.T) {
		// The same shape as the manager's script: a lock directory, a temp
		// copy, and `cat tmp > ini` so the bind-mounted inode stays.
		const script = `set -e
ini=$2
mkdir "$ini.lock.d"
trap 'rmdir "$ini.lock.d"' EXIT
tmp=$(mktemp)
awk -v line="$1 = host=postgres port=5432 dbname=$1 pool_size=5 reserve_pool=2" \
	'{ print } /^\[databases\]$/ { print line }' "$ini" > "$tmp"
cat "$tmp" > "$ini"
rm -f "$tmp"`
		tests := []struct {
			name     string
			cmd      []string
			wantExit int
			wantLine bool
		}{
			{name: "rewrite-in-place", wantExit: 0, wantLine: true,
				cmd: []string{"sh", "-c", script, "x", "proj_0123456789abcdef", PgBouncerINIPath}},
			{name: "sed-i-cannot-rename-over-the-bind-mount", wantExit: 1, wantLine: true,
				cmd: []string{"sed", "-i", "/^proj_/d", PgBouncerINIPath}},
			{name: "no-flock-applet", wantExit: 127, wantLine: true,
				cmd: []string{"sh", "-c", "flock -x /tmp/l true"}},
			{name: "runs-as-root", wantExit: 0, wantLine: true,
				cmd: []string{"sh", "-c", `test "$(id -u)" = 0`}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := Exec(t, cli, pgb.ID, tt.cmd...)
				if res.ExitCode != tt.wantExit {
					t.Errorf("exit code: got %d (stderr %q), want %d", res.ExitCode, res.Stderr,
						tt.wantExit)
				}
				lines := pgb.DatabaseLines("proj_0123456789abcdef")
				if got := len(lines) == 1; got != tt.wantLine {
					t.Errorf("project lines: got %q, want exactly one: %v", lines, tt.wantLine)
				}
			})
		}
		want := "[databases]\nproj_0123456789abcdef = host=postgres port=5432 " +
			"dbname=proj_0123456789abcdef pool_size=5 reserve_pool=2\nplatform ="
		if got := pgb.INI(); !strings.HasPrefix(got, want) {
			t.Errorf("INI: got %q, want the project line right after [databases]", got)
		}
	})

	t.Run("sighup-reloads", func(t *testing.T) {
		for i := 1; i <= 2; i++ {
			if err := cli.ContainerKill(ctx, pgb.ID, "SIGHUP"); err != nil {
				t.Fatalf("kill SIGHUP: %v", err)
			}
			pgb.WaitReloads(t, i)
		}
		if got := pgb.Reloads(); got != 2 {
			t.Errorf("reloads: got %d, want 2", got)
		}
	})
}

func TestDatabaseLines(t *testing.T) {
	dir := t.TempDir()
	p := &PgBouncer{ini: filepath.Join(dir, "pgbouncer.ini")}
	os.WriteFile(p.ini, []byte("[databases]\nproj_a = x\nproj_a=y\nproj_ab = z\n"+
		"#proj_a = c\nplatform = p\n"), 0o644)
	tests := []struct {
		name string
		id   string
		want []string
	}{
		{name: "spaced-and-unspaced", id: "proj_a", want: []string{"proj_a = x", "proj_a=y"}},
		{name: "longer-id-only", id: "proj_ab", want: []string{"proj_ab = z"}},
		{name: "absent", id: "proj_c", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.DatabaseLines(tt.id); !slices.Equal(got, tt.want) {
				t.Errorf("DatabaseLines(%q): got %q, want %q", tt.id, got, tt.want)
			}
		})
	}
}

func TestStandinImageLabelsAreInherited(t *testing.T) {
	cli := Client(t)
	tag := standinForTest(t, cli)
	// As the code under test would create it: only its own labels.
	name := testName("made-by-code")
	RemoveContainerOnCleanup(t, cli, name)
	_, err := cli.ContainerCreate(context.Background(), &container.Config{Image: tag,
		Labels: map[string]string{"io.launchdb.role": "postgrest"}}, nil, nil, nil, name)
	if err != nil {
		t.Fatalf("creating container: %v", err)
	}
	c, err := cli.ContainerInspect(context.Background(), name)
	if err != nil {
		t.Fatalf("inspecting container: %v", err)
	}
	tests := []struct {
		name  string
		label string
		want  string
	}{
		{name: "run-label-inherited", label: RunLabel, want: RunID()},
		{name: "no-fixture-label", label: FixtureLabel, want: ""},
		{name: "own-label-kept", label: "io.launchdb.role", want: "postgrest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Config.Labels[tt.label]; got != tt.want {
				t.Errorf("label %s: got %q, want %q", tt.label, got, tt.want)
			}
		})
	}
}
