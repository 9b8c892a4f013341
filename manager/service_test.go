package manager

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/google/go-cmp/cmp"
)

// harness is a Service over fakes, with its config directory in a temp dir.
type harness struct {
	t      *testing.T
	svc    *Service
	db     *fakePlatform
	docker *fakeEngine
	key    MasterKey

	mu       sync.Mutex
	notReady map[string]bool // container names the fake readiness check refuses
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	cfg, err := ConfigFromEnv(func(name string) string {
		return map[string]string{
			"INTERNAL_API_KEY":     "test-key",
			"PLATFORM_DB_DSN":      "postgres://u@localhost/platform",
			"LAUNCHDB_MASTER_KEY":  vectorKey,
			"POSTGREST_CONFIG_DIR": t.TempDir(),
			"DOMAIN":               "example.test",
		}[name]
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: newFakePlatform(), docker: newFakeEngine(t), key: cfg.MasterKey,
		notReady: map[string]bool{}}
	h.svc = New(cfg, h.db, h.docker, nil)
	h.svc.ready = func(ctx context.Context, name, network string) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.notReady[name] {
			return fmt.Errorf("container %s did not become ready within %s: "+
				"GET http://%s:3000/: 503 Service Unavailable",
				name, h.svc.cfg.SpawnReadyTimeout, name)
		}
		return nil
	}
	return h
}

func (h *harness) setNotReady(name string, v bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notReady[name] = v
}

// seed stores an active project with the given secrets, encrypted like platform-api does.
func (h *harness) seed(id, jwt, password string) {
	h.db.set(id, Project{ID: id, DBName: id, Status: "active"}, map[string][]byte{
		SecretJWT:        h.key.seal([]byte("0123456789ab"), jwt),
		SecretDBPassword: h.key.seal([]byte("ba9876543210"), password),
	})
}

func (h *harness) configFile(id string) (string, bool) {
	data, err := os.ReadFile(h.svc.configPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return string(data), true
}

const testID = "proj_0123456789abcdef"

func wantStatus(t *testing.T, err error, status int, code string) {
	t.Helper()
	var ae *apiError
	if !errors.As(err, &ae) {
		t.Fatalf("error: got %v, want an API error %d %s", err, status, code)
	}
	if ae.status != status || ae.code != code {
		t.Fatalf("error: got %d %s (%s), want %d %s", ae.status, ae.code, ae.message, status, code)
	}
}

func TestSpawnNewProjectCreatesContainerConfigAndLine(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt-secret-1", "pass+word/1=")

	res, err := h.svc.Spawn(context.Background(), testID)
	if err != nil {
		t.Fatal(err)
	}
	name := ContainerName(testID)
	c, ok := h.docker.container(name)
	if !ok || !c.running {
		t.Fatalf("container %s: got exists=%v running=%v, want a running container", name, ok,
			c.running)
	}
	want := SpawnResult{ProjectID: testID, ContainerID: c.id, ContainerName: name, Port: 3000,
		Status: StatusRunning, ConfigHash: res.ConfigHash}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if len(res.ContainerID) != 64 {
		t.Errorf("containerId: got %q, want a full 64-hex ID", res.ContainerID)
	}

	wantConfig := BuildPostgRESTConfig(testID, testID, ProjectSecrets{DBPassword: "pass+word/1=",
		JWTSecret: "jwt-secret-1"})
	if got, _ := h.configFile(testID); got != string(wantConfig) {
		t.Errorf("config file:\n%s\nwant:\n%s", got, wantConfig)
	}
	if res.ConfigHash != ConfigHash(wantConfig) {
		t.Errorf("configHash: got %s, want %s", res.ConfigHash, ConfigHash(wantConfig))
	}
	st, err := os.Stat(h.svc.configPath(testID))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("config file mode: got %v (%v), want 0600", st.Mode().Perm(), err)
	}
	if got := h.docker.databaseLines(testID); len(got) != 1 {
		t.Errorf("PgBouncer lines: got %q, want exactly one", got)
	}
	if n := h.docker.count("kill SIGHUP " + fakePgBouncer); n != 1 {
		t.Errorf("PgBouncer reloads: got %d, want 1", n)
	}

	pids := int64(512)
	wantCfg := container.Config{
		Image:  "launchdb/postgrest:v1",
		Cmd:    []string{"/etc/postgrest/projects/" + testID + ".conf"},
		Env:    []string{"DOMAIN=example.test"},
		Labels: map[string]string{"io.launchdb.role": "postgrest", "io.launchdb.project": testID},
		Healthcheck: &container.HealthConfig{Test: []string{"CMD", "curl", "-f",
			"http://localhost:3000/"},
			Interval: 30 * time.Second, Timeout: 10 * time.Second, Retries: 3,
			StartPeriod: 30 * time.Second},
	}
	wantHost := container.HostConfig{
		NetworkMode:   "launchdb-internal",
		RestartPolicy: container.RestartPolicy{Name: "unless-stopped"},
		Binds:         []string{"launchdb_postgrest-projects:/etc/postgrest/projects:ro"},
		SecurityOpt:   []string{"no-new-privileges"},
		Resources:     container.Resources{PidsLimit: &pids},
	}
	if diff := cmp.Diff(wantCfg, c.cfg); diff != "" {
		t.Errorf("create config (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantHost, c.host); diff != "" {
		t.Errorf("create host config (-want +got):\n%s", diff)
	}
}

func TestSpawnAgainIsAlreadyRunningWithoutChanges(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	first, err := h.svc.Spawn(context.Background(), testID)
	if err != nil {
		t.Fatal(err)
	}
	callsBefore := len(h.docker.callList())

	res, err := h.svc.Spawn(context.Background(), testID)
	if err != nil {
		t.Fatal(err)
	}
	name := ContainerName(testID)
	want := SpawnResult{ProjectID: testID, ContainerID: name, ContainerName: name, Port: 3000,
		Status: StatusAlreadyRunning, ConfigHash: first.ConfigHash}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	for _, call := range h.docker.callList()[callsBefore:] {
		if strings.HasPrefix(call, "create") || strings.HasPrefix(call,
			"restart") || strings.HasPrefix(call, "kill") {
			t.Errorf("call %q on an unchanged project; want none", call)
		}
	}
	if got := h.docker.databaseLines(testID); len(got) != 1 {
		t.Errorf("PgBouncer lines: got %q, want exactly one", got)
	}
}

func TestSpawnRestoresMissingPgBouncerLineOnAlreadyRunning(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	if _, err := h.svc.Spawn(context.Background(), testID); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.docker.ini, []byte("[databases]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := h.svc.Spawn(context.Background(), testID)
	if err != nil || res.Status != StatusAlreadyRunning {
		t.Fatalf("got %+v, %v; want already_running", res, err)
	}
	if got := h.docker.databaseLines(testID); len(got) != 1 {
		t.Errorf("PgBouncer lines: got %q, want the line restored", got)
	}
	if n := h.docker.count("kill SIGHUP " + fakePgBouncer); n != 2 {
		t.Errorf("PgBouncer reloads: got %d, want 2", n)
	}
}

func TestSpawnChangedSecretRestartsAsReloaded(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt-old", "pw")
	first, err := h.svc.Spawn(context.Background(), testID)
	if err != nil {
		t.Fatal(err)
	}
	h.seed(testID, "jwt-new", "pw")

	res, err := h.svc.Spawn(context.Background(), testID)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusReloaded || res.ConfigHash == first.ConfigHash {
		t.Errorf("got status %s hash %s, want reloaded with a new hash (old %s)", res.Status,
			res.ConfigHash, first.ConfigHash)
	}
	if n := h.docker.count("restart " + ContainerName(testID)); n != 1 {
		t.Errorf("restarts: got %d, want 1", n)
	}
	if got, _ := h.configFile(testID); !strings.Contains(got, `jwt-secret = "jwt-new"`) {
		t.Errorf("config file does not hold the new secret:\n%s", got)
	}
}

func TestSpawnFailedReloadRestoresPreviousConfig(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt-old", "pw")
	if _, err := h.svc.Spawn(context.Background(), testID); err != nil {
		t.Fatal(err)
	}
	old, _ := h.configFile(testID)
	h.seed(testID, "jwt-new", "pw")
	h.setNotReady(ContainerName(testID), true)

	_, err := h.svc.Spawn(context.Background(), testID)
	wantStatus(t, err, http.StatusInternalServerError, "spawn_failed")
	if got, _ := h.configFile(testID); got != old {
		t.Errorf("config file after failed reload:\n%s\nwant the previous one:\n%s", got, old)
	}

	// The change was not applied, so the next spawn must try again (B16).
	h.setNotReady(ContainerName(testID), false)
	res, err := h.svc.Spawn(context.Background(), testID)
	if err != nil || res.Status != StatusReloaded {
		t.Errorf("next spawn: got %+v, %v; want reloaded", res, err)
	}
}

func TestSpawnConfigWrittenAfterStartIsReloaded(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	if _, err := h.svc.Spawn(context.Background(), testID); err != nil {
		t.Fatal(err)
	}
	// A crash between writing the file and restarting leaves a container older than
	// its file, with the same bytes the next spawn computes.
	future := time.Now().Add(time.Minute)
	if err := os.Chtimes(h.svc.configPath(testID), future, future); err != nil {
		t.Fatal(err)
	}
	res, err := h.svc.Spawn(context.Background(), testID)
	if err != nil || res.Status != StatusReloaded {
		t.Errorf("got %+v, %v; want reloaded", res, err)
	}
}

func TestSpawnNeverReadyLeavesNothingBehind(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "standin-never-ready", "pw")
	h.setNotReady(ContainerName(testID), true)

	_, err := h.svc.Spawn(context.Background(), testID)
	wantStatus(t, err, http.StatusInternalServerError, "spawn_failed")
	if !strings.Contains(err.Error(), "did not become ready") {
		t.Errorf("message: got %q, want it to say the container did not become ready", err)
	}
	if _, ok := h.docker.container(ContainerName(testID)); ok {
		t.Error("container left behind")
	}
	if got := h.docker.databaseLines(testID); len(got) != 0 {
		t.Errorf("PgBouncer lines left behind: %q", got)
	}
	if _, ok := h.configFile(testID); ok {
		t.Error("config file left behind")
	}
}

func TestSpawnRecreatesStoppedContainer(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	first, err := h.svc.Spawn(context.Background(), testID)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.docker.ContainerStop(context.Background(), ContainerName(testID),
		container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := h.svc.Spawn(context.Background(), testID)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusRunning || res.ContainerID == first.ContainerID {
		t.Errorf("got %s %s, want a new running container (old %s)", res.Status, res.ContainerID,
			first.ContainerID)
	}
	if got := h.docker.databaseLines(testID); len(got) != 1 {
		t.Errorf("PgBouncer lines: got %q, want exactly one", got)
	}
}

// TestSpawnRestoresRunningContainerWhenReplacementFails: a running container whose image
// is no longer the configured one is replaced; when the new one cannot be created, the
// spawn fails and the project runs again as before, whole.
func TestSpawnRestoresRunningContainerWhenReplacementFails(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	if _, err := h.svc.Spawn(ctx, testID); err != nil {
		t.Fatal(err)
	}
	oldImage := h.svc.cfg.Image
	h.svc.cfg.Image = "launchdb/postgrest:v2"
	h.docker.setFail("create-image launchdb/postgrest:v2",
		errors.New(`sockpin: image "launchdb/postgrest:v2" is not pinned`))
	_, err := h.svc.Spawn(ctx, testID)
	wantStatus(t, err, 500, "spawn_failed")
	c, ok := h.docker.container(ContainerName(testID))
	if !ok || !c.running || c.cfg.Image != oldImage {
		t.Errorf("after the failed replacement: container %+v (found %v), want %s running",
			c, ok, oldImage)
	}
	if got := h.wantWholeOrGone(testID); got != "whole" {
		t.Errorf("project is %s, want whole", got)
	}
}

// TestLifecycleCallsBounded: concurrent spawns and destroys of different projects all
// succeed, in parallel, with at most lifecycleCalls container lifecycle calls in flight.
func TestLifecycleCallsBounded(t *testing.T) {
	h := newHarness(t)
	h.docker.lifecycleDelay = 20 * time.Millisecond
	ids := make([]string, 4*lifecycleCalls)
	for i := range ids {
		ids[i] = fmt.Sprintf("proj_%016d", i)
		h.seed(ids[i], "jwt", "pw")
	}
	for _, op := range []func(id string) error{
		func(id string) error { _, err := h.svc.Spawn(context.Background(), id); return err },
		func(id string) error { _, err := h.svc.Destroy(context.Background(), id); return err },
	} {
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Go(func() {
				if err := op(id); err != nil {
					t.Errorf("%s: %v", id, err)
				}
			})
		}
		wg.Wait()
	}
	h.docker.mu.Lock()
	most := h.docker.maxLifecycle
	h.docker.mu.Unlock()
	if most > lifecycleCalls || most < 2 {
		t.Errorf("lifecycle calls in flight at once: got %d, want 2 to %d", most, lifecycleCalls)
	}
}

func TestSpawnConcurrentCallsForOneProjectAreSerialised(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	var wg sync.WaitGroup
	results := make([]SpawnResult, 10)
	errs := make([]error, 10)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = h.svc.Spawn(context.Background(), testID) })
	}
	wg.Wait()
	created := 0
	for i := range results {
		if errs[i] != nil {
			t.Errorf("spawn %d: %v", i, errs[i])
		}
		if results[i].Status == StatusRunning {
			created++
		}
	}
	if created != 1 || h.docker.count("create") != 1 {
		t.Errorf("created: got %d results and %d creates, want 1 and 1", created,
			h.docker.count("create"))
	}
	if got := h.docker.databaseLines(testID); len(got) != 1 {
		t.Errorf("PgBouncer lines: got %q, want exactly one", got)
	}
}

func TestSpawnErrors(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(h *harness)
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"unknown-project", func(h *harness) {}, 404, "project_not_found",
			"Project " + testID + " not found"},
		{"inactive-project", func(h *harness) {
			h.db.set(testID, Project{ID: testID, DBName: testID, Status: "failed"}, nil)
		}, 400, "project_not_active", "Project status is failed, expected active"},
		{"jwt-secret-missing", func(h *harness) {
			h.db.set(testID, Project{ID: testID, DBName: testID, Status: "active"}, nil)
		}, 500, "secret_not_found", "JWT secret not found for project"},
		{"password-missing", func(h *harness) {
			h.db.set(testID, Project{ID: testID, DBName: testID, Status: "active"},
				map[string][]byte{SecretJWT: h.key.seal(make([]byte, 12), "jwt")})
		}, 500, "secret_not_found", "Database password not found for project"},
		{"missing-password-before-undecryptable-jwt", func(h *harness) {
			h.db.set(testID, Project{ID: testID, DBName: testID, Status: "active"},
				map[string][]byte{SecretJWT: []byte("not a sealed secret")})
		}, 500, "secret_not_found", "Database password not found for project"},
		{"tampered-secret", func(h *harness) {
			h.seed(testID, "jwt", "pw")
			h.db.secrets[testID+"/"+SecretDBPassword][20] ^= 1
		}, 500, "decryption_failed", "Failed to decrypt project secrets"},
		{"empty-secret", func(h *harness) { h.seed(testID, "", "pw") },
			500, "decryption_failed", "Failed to decrypt project secrets"},
		{"database-down", func(h *harness) {
			h.db.err = errors.New("dial unix /run/pg/.s.PGSQL.5432: connect: connection refused")
		},
			500, "spawn_failed",
			"platform database unavailable: dial unix /run/pg/.s.PGSQL.5432: connect: connection refused"},
		{"db-name-injection", func(h *harness) {
			h.seed(testID, "jwt", "pw")
			h.db.projects[testID] = Project{ID: testID, DBName: `x';id;'`, Status: "active"}
		}, 500, "spawn_failed", `project ` + testID + ` has an invalid db_name "x';id;'"`},
		{"pgbouncer-exec-fails", func(h *harness) {
			h.seed(testID, "jwt", "pw")
			os.WriteFile(h.docker.ini, []byte("no databases section\n"), 0o644)
		}, 500, "pgbouncer_add_failed",
			"Failed to add project database to PgBouncer: command failed with exit code 1: sockpin-pgbouncer: "},
		{"docker-unreachable", func(h *harness) {
			h.seed(testID, "jwt", "pw")
			h.docker.setFail("list",
				errors.New("Cannot connect to the Docker daemon at tcp://proxy:2375"))
		}, 500, "spawn_failed",
			"looking up postgrest-" + testID +
				": Cannot connect to the Docker daemon at tcp://proxy:2375"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tt.setup(h)
			_, err := h.svc.Spawn(context.Background(), testID)
			wantStatus(t, err, tt.wantStatus, tt.wantCode)
			var ae *apiError
			errors.As(err, &ae)
			if !strings.HasPrefix(ae.message, tt.wantMsg) {
				t.Errorf("message: got %q, want %q", ae.message, tt.wantMsg)
			}
			if n := h.docker.count("create"); n != 0 {
				t.Errorf("creates: got %d, want 0", n)
			}
			if _, ok := h.configFile(testID); ok {
				t.Error("config file written by a failed spawn")
			}
		})
	}
}

func TestDestroyWithoutDatabaseThenCleanedUp(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	if _, err := h.svc.Spawn(context.Background(), testID); err != nil {
		t.Fatal(err)
	}
	// Destroy must not need the project row or its secrets.
	h.db.err = errors.New("database down")

	removed, err := h.svc.Destroy(context.Background(), testID)
	if err != nil || !removed {
		t.Fatalf("first destroy: got removed=%v, %v; want true, nil", removed, err)
	}
	if _, ok := h.docker.container(ContainerName(testID)); ok {
		t.Error("container still exists")
	}
	if got := h.docker.databaseLines(testID); len(got) != 0 {
		t.Errorf("PgBouncer lines left: %q", got)
	}
	if _, ok := h.configFile(testID); ok {
		t.Error("config file still exists")
	}
	if h.docker.count("stop") != 1 {
		t.Errorf("stops: got %d, want 1 (graceful stop before remove)", h.docker.count("stop"))
	}

	removed, err = h.svc.Destroy(context.Background(), testID)
	if err != nil || removed {
		t.Errorf("second destroy: got removed=%v, %v; want false, nil", removed, err)
	}
}

func TestDestroyDockerDownChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	if _, err := h.svc.Spawn(context.Background(), testID); err != nil {
		t.Fatal(err)
	}
	down := errors.New("Cannot connect to the Docker daemon at tcp://proxy:2375")
	h.docker.setFail("list", down)
	h.docker.setFail("exec", down)
	_, err := h.svc.Destroy(context.Background(), testID)
	wantStatus(t, err, 500, "destroy_failed")
	var ae *apiError
	errors.As(err, &ae)
	if want := "looking up postgrest-" + testID + ": " + down.Error(); ae.message != want {
		t.Errorf("message: got %q, want %q", ae.message, want)
	}
	// The container could not be removed: its line and config stay with it.
	if _, ok := h.docker.container(ContainerName(testID)); !ok {
		t.Error("container gone, want it untouched")
	}
	if got := h.docker.databaseLines(testID); len(got) != 1 {
		t.Errorf("PgBouncer lines: got %q, want the one line kept", got)
	}
	if _, ok := h.configFile(testID); !ok {
		t.Error("config file removed under a container that still runs")
	}
}

func TestDestroyPgBouncerDownNamesTheStep(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	if _, err := h.svc.Spawn(context.Background(), testID); err != nil {
		t.Fatal(err)
	}
	down := errors.New("exec refused")
	h.docker.setFail("exec", down)
	_, err := h.svc.Destroy(context.Background(), testID)
	wantStatus(t, err, 500, "destroy_failed")
	var ae *apiError
	errors.As(err, &ae)
	want := "removing PgBouncer line: creating exec in launchdb-pgbouncer: " + down.Error()
	if ae.message != want {
		t.Errorf("message: got %q, want %q", ae.message, want)
	}
	if _, ok := h.docker.container(ContainerName(testID)); ok {
		t.Error("container still exists, want it removed before the failed step")
	}
	if _, ok := h.configFile(testID); ok {
		t.Error("config file kept, want it removed once the container is gone")
	}
}

func TestRestartRunningContainerOrNotFound(t *testing.T) {
	h := newHarness(t)
	err := h.svc.Restart(context.Background(), testID)
	wantStatus(t, err, 404, "not_found")

	h.seed(testID, "jwt", "pw")
	if _, err := h.svc.Spawn(context.Background(), testID); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Restart(context.Background(), testID); err != nil {
		t.Fatal(err)
	}
	if n := h.docker.count("restart " + ContainerName(testID)); n != 1 {
		t.Errorf("Docker restarts: got %d, want 1", n)
	}
	h.docker.setFail("restart", errors.New("boom"))
	wantStatus(t, h.svc.Restart(context.Background(), testID), 500, "reload_failed")
}

func TestListShowsPostgRESTContainers(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	if _, err := h.svc.Spawn(context.Background(), testID); err != nil {
		t.Fatal(err)
	}
	got, err := h.svc.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []ContainerInfo{{ProjectID: testID, ContainerName: ContainerName(testID), Port: 3000,
		Status: "running", Health: "Up 1 second"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	h.docker.setFail("list", errors.New("proxy down"))
	_, err = h.svc.List(context.Background())
	wantStatus(t, err, 500, "list_failed")
}

func TestReconcileRemovesLeftoversAndRestoresLines(t *testing.T) {
	h := newHarness(t)
	const other = "proj_aaaaaaaaaaaaaaaa"
	h.seed(testID, "jwt", "pw")
	if _, err := h.svc.Spawn(context.Background(), testID); err != nil {
		t.Fatal(err)
	}
	// A crash after create, before the config file: not running, no config.
	cfg, host := h.svc.containerSpec(other, "launchdb-internal")
	if _, err := h.docker.ContainerCreate(context.Background(), cfg, host, nil, nil,
		ContainerName(other)); err != nil {
		t.Fatal(err)
	}
	// The running project's PgBouncer line got lost.
	if err := os.WriteFile(h.docker.ini, []byte("[databases]\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A crash during an atomic write leaves a temporary copy, with secrets.
	leftover := filepath.Join(h.svc.cfg.ConfigDir, "."+testID+".conf.tmp-123")
	if err := os.WriteFile(leftover, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}

	if err := h.svc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("leftover temporary config file: got %v, want it removed", err)
	}
	if _, ok := h.docker.container(ContainerName(other)); ok {
		t.Error("half-created container not removed")
	}
	if _, ok := h.docker.container(ContainerName(testID)); !ok {
		t.Error("running container removed")
	}
	if got := h.docker.databaseLines(testID); len(got) != 1 {
		t.Errorf("PgBouncer lines of the running project: got %q, want one", got)
	}
}
