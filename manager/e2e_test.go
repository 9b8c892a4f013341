package manager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/launchdb/sockpin/internal/dockertest"
	"github.com/launchdb/sockpin/internal/pgtest"
)

// Names the deployment fixes and the default policy.yaml pins.
const (
	e2eNetwork = "launchdb-internal"
	e2eVolume  = "launchdb_postgrest-projects"
)

// e2e is a manager wired to real parts: the Docker daemon through the proxy running the
// repository's policy.yaml, the PostgREST and PgBouncer stand-ins, and a platform database.
type e2e struct {
	t         *testing.T
	docker    *client.Client // direct to the daemon, for assertions only
	proxy     *dockertest.Proxy
	pgb       *dockertest.PgBouncer
	db        *pgPlatform
	configDir string
	cfg       Config
	svc       *Service
	url       string
	logs      *lockedLog
}

type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func setupE2E(t *testing.T) *e2e {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: needs Docker and PostgreSQL")
	}
	cli := dockertest.Client(t)
	e := &e2e{t: t, docker: cli, configDir: t.TempDir(), logs: &lockedLog{}}
	e.db = newE2EPlatform(t)

	dockertest.Network(t, cli, e2eNetwork)
	dockertest.BindVolume(t, cli, e2eVolume, e.configDir)
	dockertest.StandinImage(t, cli, dockertest.PostgRESTImage)
	e.pgb = dockertest.StartPgBouncer(t, cli, e2eNetwork)
	e.proxy = dockertest.StartProxy(t, dockertest.ProxyOptions{})

	cfg, err := ConfigFromEnv(func(name string) string {
		return map[string]string{
			"INTERNAL_API_KEY":     e2eKey,
			"PLATFORM_DB_DSN":      e.db.dsn,
			"LAUNCHDB_MASTER_KEY":  pgtest.MasterKeyBase64,
			"DOCKER_HOST":          e.proxy.DockerHost,
			"POSTGREST_CONFIG_DIR": e.configDir,
			"DOMAIN":               "example.test",
		}[name]
	})
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	e.svc = e.newService(cfg)
	srv := httptest.NewServer(e.svc.Handler())
	t.Cleanup(srv.Close)
	e.url = srv.URL
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("manager log:\n%s", e.logs.String())
		}
	})
	return e
}

// newService returns a manager with cfg over the test's platform database and proxy.
func (e *e2e) newService(cfg Config) *Service {
	e.t.Helper()
	engine, err := NewEngine(cfg.DockerHost)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { engine.Close() })
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return New(cfg, e.db, engine, log)
}

const e2eKey = "e2e-internal-key"

// project returns a fresh random project ID whose container is removed on cleanup.
func (e *e2e) project() string {
	id := dockertest.ProjectID()
	dockertest.RemoveContainerOnCleanup(e.t, e.docker, ContainerName(id))
	return id
}

type answer struct {
	status int
	body   map[string]any
	raw    string
}

func (e *e2e) call(method, path, body string, header map[string]string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(data)}
	if err := json.Unmarshal(data, &a.body); err != nil {
		e.t.Errorf("%s %s: body %q is not a JSON object: %v", method, path, data, err)
	}
	return a
}

var e2eHeader = map[string]string{"X-Internal-Key": e2eKey, "Content-Type": "application/json"}

func (e *e2e) spawn(id string) answer {
	e.t.Helper()
	return e.call("POST", "/internal/postgrest/spawn", `{"projectId":"`+id+`"}`, e2eHeader)
}

func (e *e2e) destroy(id string) answer {
	e.t.Helper()
	return e.call("DELETE", "/internal/postgrest/"+id, "", e2eHeader)
}

// containers returns the containers of project id, in any state.
func (e *e2e) containers(id string) []container.Summary {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := e.docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", LabelProject+"="+id))})
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

// served asks the stand-in in the project's container which config it read.
func (e *e2e) served(id string) (sha string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := e.docker.ContainerInspect(ctx, ContainerName(id))
	if err != nil {
		e.t.Fatal(err)
	}
	ip := c.NetworkSettings.Networks[e2eNetwork].IPAddress
	resp, err := http.Get("http://" + ip + ":3000/")
	if err != nil {
		e.t.Fatalf("asking the stand-in: %v", err)
	}
	defer resp.Body.Close()
	var got struct{ SHA256, Project, Config string }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		e.t.Fatal(err)
	}
	return got.SHA256
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (e *e2e) wantNothingLeft(id string) {
	e.t.Helper()
	if cs := e.containers(id); len(cs) != 0 {
		e.t.Errorf("containers of %s: got %d, want none", id, len(cs))
	}
	if lines := e.pgb.DatabaseLines(id); len(lines) != 0 {
		e.t.Errorf("PgBouncer lines of %s: got %q, want none", id, lines)
	}
	if _, err := os.Stat(e.svc.configPath(id)); !os.IsNotExist(err) {
		e.t.Errorf("config file of %s: got %v, want it absent", id, err)
	}
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestEndToEnd(t *testing.T) {
	e := setupE2E(t)
	secrets := ProjectSecrets{JWTSecret: "jwt-one+/=\"quoted\"", DBPassword: "pass word+/="}
	id := e.project()
	e.db.seed(t, id, "active", secrets.JWTSecret, secrets.DBPassword)
	wantConfig := BuildPostgRESTConfig(id, id, secrets)

	t.Run("spawn-new-project-201", func(t *testing.T) {
		start := time.Now()
		a := e.spawn(id)
		took := time.Since(start)
		t.Logf("spawn to 201: %v", took.Round(time.Millisecond))
		if a.status != 201 {
			t.Fatalf("status: got %d %s, want 201", a.status, a.raw)
		}
		if took >= 20*time.Second {
			t.Errorf("spawn took %v, want under 20s", took)
		}
		name := ContainerName(id)
		cs := e.containers(id)
		if len(cs) != 1 || cs[0].State != "running" {
			t.Fatalf("containers: got %+v, want one running", cs)
		}
		want := map[string]any{"projectId": id, "containerId": cs[0].ID, "containerName": name,
			"port": float64(3000), "status": "running", "configHash": ConfigHash(wantConfig)}
		for k, v := range want {
			if a.body[k] != v {
				t.Errorf("body %s: got %v, want %v", k, a.body[k], v)
			}
		}
		if !hex64.MatchString(cs[0].ID) {
			t.Errorf("containerId %q is not a full 64-hex ID", cs[0].ID)
		}
		if cs[0].Labels[LabelRole] != RolePostgREST || cs[0].Labels[LabelProject] != id {
			t.Errorf("labels: got %v, want role postgrest and project %s", cs[0].Labels, id)
		}
		got, err := os.ReadFile(e.svc.configPath(id))
		if err != nil || !bytes.Equal(got, wantConfig) {
			t.Errorf("config file (%v):\n%s\nwant:\n%s", err, got, wantConfig)
		}
		if st, err := os.Stat(e.svc.configPath(id)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("config file mode: got %v, want 0600", st.Mode().Perm())
		}
		wantLine := id + " = host=postgres port=5432 dbname=" + id + " pool_size=5 reserve_pool=2"
		if lines := e.pgb.DatabaseLines(id); len(lines) != 1 || lines[0] != wantLine {
			t.Errorf("PgBouncer lines: got %q, want exactly [%q]", lines, wantLine)
		}
		e.pgb.WaitReloads(t, 1)
		if sha := e.served(id); sha != sha256Hex(wantConfig) {
			t.Errorf("stand-in serves config sha256 %s, want %s", sha, sha256Hex(wantConfig))
		}
	})

	t.Run("spawn-again-already-running", func(t *testing.T) {
		a := e.spawn(id)
		if a.status != 200 || a.body["status"] != "already_running" ||
			a.body["configHash"] != ConfigHash(wantConfig) {
			t.Errorf("got %d %s, want 200 already_running with the same configHash", a.status,
				a.raw)
		}
		if lines := e.pgb.DatabaseLines(id); len(lines) != 1 {
			t.Errorf("PgBouncer lines: got %q, want exactly one", lines)
		}
	})

	t.Run("secret-change-reloaded", func(t *testing.T) {
		secrets.JWTSecret = "jwt-two"
		e.db.rotate(t, id, SecretJWT, secrets.JWTSecret)
		newConfig := BuildPostgRESTConfig(id, id, secrets)
		start := time.Now()
		a := e.spawn(id)
		t.Logf("spawn to 200 reloaded: %v", time.Since(start).Round(time.Millisecond))
		if a.status != 200 || a.body["status"] != "reloaded" ||
			a.body["configHash"] != ConfigHash(newConfig) {
			t.Fatalf("got %d %s, want 200 reloaded with configHash %s", a.status, a.raw,
				ConfigHash(newConfig))
		}
		if sha := e.served(id); sha != sha256Hex(newConfig) {
			t.Errorf("stand-in serves config sha256 %s, want the new config's %s", sha,
				sha256Hex(newConfig))
		}
		if a := e.spawn(id); a.body["status"] != "already_running" {
			t.Errorf("spawn after reload: got %s, want already_running", a.raw)
		}
	})

	t.Run("restart-route-restarts", func(t *testing.T) {
		inspect := func() container.InspectResponse {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := e.docker.ContainerInspect(ctx, ContainerName(id))
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		before := inspect()
		a := e.call("POST", "/internal/postgrest/"+id+"/restart", "", e2eHeader)
		want := `{"projectId":"` + id +
			`","status":"reloaded","message":"PostgREST configuration reloaded via SIGHUP"}`
		if a.status != 200 || a.raw != want {
			t.Fatalf("got %d %s, want 200 %s", a.status, a.raw, want)
		}
		after := inspect()
		if after.ID != before.ID || !after.State.Running ||
			after.State.StartedAt == before.State.StartedAt {
			t.Errorf("after restart: same ID %v, running %v, started %s (before %s); "+
				"want the same container restarted",
				after.ID == before.ID, after.State.Running, after.State.StartedAt,
				before.State.StartedAt)
		}
	})

	t.Run("list", func(t *testing.T) {
		a := e.call("GET", "/internal/postgrest", "", e2eHeader)
		if a.status != 200 || !strings.Contains(a.raw,
			`"projectId":"`+id+`","containerName":"postgrest-`+id+`","port":3000,"status":"running"`) {
			t.Errorf("got %d %s, want the project listed as running", a.status, a.raw)
		}
	})

	t.Run("concurrent-spawns-one-container", func(t *testing.T) {
		other := e.project()
		e.db.seed(t, other, "active", "jwt-c", "pw-c")
		var wg sync.WaitGroup
		answers := make([]answer, 10)
		start := time.Now()
		for i := range answers {
			wg.Go(func() { answers[i] = e.spawn(other) })
		}
		wg.Wait()
		t.Logf("10 concurrent spawns of one project answered within %v",
			time.Since(start).Round(time.Millisecond))
		created := 0
		for i, a := range answers {
			if a.status/100 != 2 {
				t.Errorf("spawn %d: got %d %s, want 2xx", i, a.status, a.raw)
			}
			if a.status == 201 {
				created++
			}
		}
		if created != 1 {
			t.Errorf("201 answers: got %d, want 1", created)
		}
		if cs := e.containers(other); len(cs) != 1 {
			t.Errorf("containers: got %d, want 1", len(cs))
		}
		if lines := e.pgb.DatabaseLines(other); len(lines) != 1 {
			t.Errorf("PgBouncer lines: got %q, want exactly one", lines)
		}
		if a := e.destroy(other); a.body["status"] != "stopped" {
			t.Errorf("destroy: got %s, want stopped", a.raw)
		}
	})

	t.Run("reconcile-removes-half-created-and-restores-line", func(t *testing.T) {
		half := e.project()
		cfg, host := e.svc.containerSpec(half, e2eNetwork)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A crash right after create: through the proxy, never started, no config file.
		if _, err := e.svc.docker.ContainerCreate(ctx, cfg, host, nil, nil,
			ContainerName(half)); err != nil {
			t.Fatal(err)
		}
		ini := e.pgb.INI()
		if err := os.WriteFile(e.pgb.INIFile(), []byte(strings.Replace(ini,
			e.pgb.DatabaseLines(id)[0]+"\n", "", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.Reconcile(ctx); err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		if cs := e.containers(half); len(cs) != 0 {
			t.Errorf("half-created container: got %d, want removed", len(cs))
		}
		if cs := e.containers(id); len(cs) != 1 || cs[0].State != "running" {
			t.Errorf("running project's container: got %+v, want it untouched", cs)
		}
		if lines := e.pgb.DatabaseLines(id); len(lines) != 1 {
			t.Errorf("PgBouncer lines of the running project: got %q, want the line restored",
				lines)
		}
	})

	t.Run("destroy-then-cleaned-up", func(t *testing.T) {
		a := e.destroy(id)
		want := `{"projectId":"` + id +
			`","status":"stopped","message":"Container stopped and PgBouncer cleaned"}`
		if a.status != 200 || a.raw != want {
			t.Errorf("got %d %s, want 200 %s", a.status, a.raw, want)
		}
		e.wantNothingLeft(id)
		a = e.destroy(id)
		want = `{"projectId":"` + id +
			`","status":"cleaned_up","message":"PgBouncer cleaned (container not found)"}`
		if a.status != 200 || a.raw != want {
			t.Errorf("second destroy: got %d %s, want 200 %s", a.status, a.raw, want)
		}
	})

	t.Run("never-ready-spawn-leaves-nothing", func(t *testing.T) {
		cfg := e.cfg
		cfg.SpawnReadyTimeout = 3 * time.Second
		srv := httptest.NewServer(e.newService(cfg).Handler())
		defer srv.Close()
		never := e.project()
		e.db.seed(t, never, "active", "standin-never-ready-"+never, "pw")
		reloads := e.pgb.Reloads()

		req, _ := http.NewRequest("POST", srv.URL+"/internal/postgrest/spawn",
			strings.NewReader(`{"projectId":"`+never+`"}`))
		for k, v := range e2eHeader {
			req.Header.Set(k, v)
		}
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("never-ready spawn answered in %v: %s", time.Since(start).Round(time.Millisecond),
			body)
		if resp.StatusCode != 500 || !strings.Contains(string(body), `"error":"spawn_failed"`) ||
			!strings.Contains(string(body), "did not become ready within 3s") {
			t.Errorf("got %d %s, want 500 spawn_failed saying it did not become ready",
				resp.StatusCode, body)
		}
		e.wantNothingLeft(never)
		// Added once, removed once: PgBouncer was told both times.
		e.pgb.WaitReloads(t, reloads+2)
	})

	t.Run("client-errors", func(t *testing.T) {
		inactive := e.project()
		e.db.seed(t, inactive, "suspended", "jwt", "pw")
		unknown := dockertest.ProjectID()
		tests := []struct {
			name         string
			method, path string
			body         string
			header       map[string]string
			wantStatus   int
			wantBody     string
		}{
			{"missing-key", "POST", "/internal/postgrest/spawn", `{"projectId":"` + id + `"}`,
				map[string]string{"Content-Type": "application/json"}, 401, body401},
			{"wrong-key", "DELETE", "/internal/postgrest/" + id, "",
				map[string]string{"X-Internal-Key": "nope"}, 403, body403},
			{"missing-id", "POST", "/internal/postgrest/spawn", `{}`, e2eHeader, 400, bodyRequired},
			{"array-id", "POST", "/internal/postgrest/spawn", `{"projectId":["` + id + `"]}`,
				e2eHeader, 400, bodyInvalid},
			{"bad-id-in-url", "DELETE", "/internal/postgrest/x%22%3Bid%3B%22",
				`{"projectId":"` + id + `"}`, e2eHeader, 400, bodyInvalid},
			{"bad-id-in-restart-url", "POST", "/internal/postgrest/proj_short/restart", "",
				e2eHeader, 400, bodyInvalid},
			{"unknown-project", "POST", "/internal/postgrest/spawn",
				`{"projectId":"` + unknown + `"}`, e2eHeader, 404,
				`{"error":"project_not_found","message":"Project ` + unknown + ` not found"}`},
			{"inactive-project", "POST", "/internal/postgrest/spawn",
				`{"projectId":"` + inactive + `"}`, e2eHeader, 400,
				`{"error":"project_not_active","message":"Project status is suspended, expected active"}`},
			{"restart-not-running", "POST", "/internal/postgrest/" + unknown + "/restart", "",
				e2eHeader, 404,
				`{"error":"not_found","message":"Container not running"}`},
			{"unknown-route", "GET", "/internal/nope", "", nil, 404,
				`{"error":"not_found","message":"Cannot GET /internal/nope"}`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				a := e.call(tt.method, tt.path, tt.body, tt.header)
				if a.status != tt.wantStatus || a.raw != tt.wantBody {
					t.Errorf("got %d %s, want %d %s", a.status, a.raw, tt.wantStatus, tt.wantBody)
				}
			})
		}
		if cs := e.containers(inactive); len(cs) != 0 {
			t.Errorf("inactive project got %d containers, want none", len(cs))
		}
	})

	t.Run("database-down-then-back", func(t *testing.T) {
		p := e.project()
		e.db.seed(t, p, "active", "jwt-d", "pw-d")
		e.db.stop(t)
		a := e.spawn(p)
		if a.status != 500 || a.body["error"] != "spawn_failed" ||
			!strings.HasPrefix(a.body["message"].(string), "platform database unavailable: ") {
			t.Errorf("database down: got %d %s, want 500 spawn_failed naming the database",
				a.status, a.raw)
		}
		if h := e.call("GET", "/health", "", nil); h.status != 503 {
			t.Errorf("health with the database down: got %d %s, want 503", h.status, h.raw)
		}
		e.db.start(t)
		if a := e.spawn(p); a.status != 201 {
			t.Errorf("database back: got %d %s, want 201", a.status, a.raw)
		}
		if h := e.call("GET", "/health", "",
			nil); h.raw != `{"status":"healthy","service":"postgrest-manager"}` {
			t.Errorf("health: got %d %s, want healthy", h.status, h.raw)
		}
		e.destroy(p)
		e.wantNothingLeft(p)
	})

	t.Run("logs-hold-no-secrets", func(t *testing.T) {
		logs := e.logs.String()
		for _, secret := range []string{secrets.DBPassword, secrets.JWTSecret, "jwt-one",
			pgtest.MasterKeyBase64, e2eKey, pgtest.ManagerPassword} {
			if strings.Contains(logs, secret) {
				t.Errorf("manager log contains secret %q", secret)
			}
		}
	})

	t.Run("proxy-allowed-every-request", func(t *testing.T) {
		lines := e.proxy.AuditLines()
		if len(lines) == 0 {
			t.Fatal("proxy audit log is empty")
		}
		t.Logf("proxy audit log: %d decisions", len(lines))
		for _, l := range lines {
			if l["decision"] != "allow" {
				t.Errorf("proxy decision: got %v", l)
			}
		}
	})
}
