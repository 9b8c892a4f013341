package manager

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/launchdb/sockpin/internal/dockertest"
	"github.com/launchdb/sockpin/internal/pgtest"
)

// managerProcess is cmd/manager running as a process of its own against the end-to-end
// parts, so that a test can kill it with SIGKILL and start it again.
type managerProcess struct {
	t    *testing.T
	bin  string
	env  []string
	addr string // 127.0.0.1:<port>
	logs *lockedLog

	cmd  *exec.Cmd
	done chan struct{}
}

// startManager runs the manager binary with e's configuration plus extra VAR=value
// settings, and waits until it serves and its start-up reconcile has finished.
func (e *e2e) startManager(extra ...string) *managerProcess {
	e.t.Helper()
	addr := dockertest.FreePort(e.t)
	_, port, _ := net.SplitHostPort(addr)
	m := &managerProcess{t: e.t, bin: dockertest.BuildBinary(e.t, "manager"), addr: addr,
		logs: &lockedLog{}}
	// Only what the test sets: nothing of the test's own environment leaks in.
	m.env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"PORT=" + port,
		"INTERNAL_API_KEY=" + e2eKey,
		"PLATFORM_DB_DSN=" + e.db.dsn,
		"LAUNCHDB_MASTER_KEY=" + pgtest.MasterKeyBase64,
		"DOCKER_HOST=" + e.proxy.DockerHost,
		"POSTGREST_CONFIG_DIR=" + e.configDir,
		"DOMAIN=example.test",
		"LOG_LEVEL=debug",
		// Long enough for a create the killed process left in flight to land here.
		"CRASH_RECOVERY_WAIT=3s",
	}, extra...)
	m.start()
	e.t.Cleanup(func() {
		m.stop()
		if e.t.Failed() {
			e.t.Logf("manager process log:\n%s", m.logs.String())
		}
	})
	return m
}

func (m *managerProcess) start() {
	m.t.Helper()
	const reconciled = `"msg":"start-up reconcile`
	before := strings.Count(m.logs.String(), reconciled)
	m.cmd = exec.Command(m.bin)
	m.cmd.Env = m.env
	m.cmd.Stderr = m.logs
	m.cmd.Stdout = m.logs
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("starting the manager: %v", err)
	}
	m.done = make(chan struct{})
	go func() {
		m.cmd.Wait()
		close(m.done)
	}()
	// It serves at once and reconciles meanwhile; the log says when that is done.
	deadline := time.Now().Add(90 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", m.addr, time.Second); err == nil {
			c.Close()
			if strings.Count(m.logs.String(), reconciled) > before {
				return
			}
		}
		select {
		case <-m.done:
			m.t.Fatalf("the manager exited before serving: %v\n%s", m.cmd.ProcessState,
				m.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("the manager does not serve on %s", m.addr)
		}
	}
}

// kill ends the manager with SIGKILL, as a crash or an OOM kill would.
func (m *managerProcess) kill() {
	m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
}

func (m *managerProcess) stop() {
	select {
	case <-m.done:
		return
	default:
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(40 * time.Second):
		m.kill()
	}
}

// via returns e talking to another manager at url (same daemon, database, PgBouncer and
// config directory).
func (e *e2e) via(url string, svc *Service) *e2e {
	other := *e
	other.url = url
	if svc != nil {
		other.svc = svc
	}
	return &other
}

// spawnAsync sends a spawn whose answer nobody may be there to read.
func (e *e2e) spawnAsync(id string) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", e.url+"/internal/postgrest/spawn",
			strings.NewReader(`{"projectId":"`+id+`"}`))
		for k, v := range e2eHeader {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- answer{status: -1, raw: err.Error()}
			return
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		ch <- answer{status: resp.StatusCode, raw: buf.String()}
	}()
	return ch
}

// waitContainer waits until the project has a container in state (any state for "").
func (e *e2e) waitContainer(id, state string, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		cs := e.containers(id)
		if len(cs) > 0 && (state == "" || string(cs[0].State) == state) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("project %s: no container in state %q after %v", id, state, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wholeOrGone checks that project id is either whole (one running container, the config
// file with wantConfig, exactly one PgBouncer line) or gone (none of them), with no
// temporary config file left, and returns which.
func (e *e2e) wholeOrGone(id string, wantConfig []byte) string {
	e.t.Helper()
	cs := e.containers(id)
	lines := e.pgb.DatabaseLines(id)
	data, err := os.ReadFile(e.svc.configPath(id))
	hasConfig := err == nil
	if tmp, _ := filepath.Glob(filepath.Join(e.configDir, ".proj_*")); len(tmp) > 0 {
		e.t.Errorf("temporary files left in the config directory: %v", tmp)
	}
	switch {
	case len(cs) == 0 && len(lines) == 0 && !hasConfig:
		return "gone"
	case len(cs) == 1 && cs[0].State == "running" && len(lines) == 1 &&
		bytes.Equal(data, wantConfig):
		return "whole"
	}
	states := make([]string, len(cs))
	for i, c := range cs {
		states[i] = string(c.State)
	}
	e.t.Errorf("project %s is half there: containers %v, PgBouncer lines %q, config file %v "+
		"(as wanted: %v)", id, states, lines, hasConfig, bytes.Equal(data, wantConfig))
	return "half"
}

// TestManagerKilledMidSpawn kills the manager process with SIGKILL in the middle of
// spawns and starts it again: after its start-up reconcile every project is whole or gone,
// and it can be destroyed to nothing.
func TestManagerKilledMidSpawn(t *testing.T) {
	e := setupE2E(t)
	m := e.startManager("SPAWN_READY_TIMEOUT=60s")
	viaProcess := e.via("http://"+m.addr, nil)

	t.Run("killed-waiting-for-ready", func(t *testing.T) {
		id := e.project()
		secrets := ProjectSecrets{JWTSecret: "standin-never-ready-" + id, DBPassword: "pw-k"}
		e.db.seed(t, id, "active", secrets.JWTSecret, secrets.DBPassword)
		answered := viaProcess.spawnAsync(id)
		// Created and started, never ready: the spawn is waiting when the kill comes.
		e.waitContainer(id, "running", 30*time.Second)
		time.Sleep(300 * time.Millisecond)
		reloads := e.pgb.Reloads()
		m.kill()
		if a := <-answered; a.status != -1 {
			t.Errorf("spawn answered %d %s, want the connection cut by the kill", a.status, a.raw)
		}
		m.start()
		if got := e.wholeOrGone(id, BuildPostgRESTConfig(id, id, secrets)); got != "whole" {
			t.Errorf("after restart: project is %s, want whole (its container was running)",
				got)
		}
		// Reconcile reloads PgBouncer in case the kill came between an edit and its reload.
		e.pgb.WaitReloads(t, reloads+1)
		if a := viaProcess.destroy(id); a.status != 200 {
			t.Errorf("destroy after restart: got %d %s, want 200", a.status, a.raw)
		}
		e.wantNothingLeft(id)
	})

	t.Run("killed-at-points-through-spawn", func(t *testing.T) {
		// How long a whole spawn takes here, to spread the kills over it.
		ref := e.project()
		e.db.seed(t, ref, "active", "jwt-ref", "pw-ref")
		start := time.Now()
		if a := viaProcess.spawn(ref); a.status != 201 {
			t.Fatalf("reference spawn: got %d %s", a.status, a.raw)
		}
		took := time.Since(start)
		viaProcess.destroy(ref)
		points := 6
		if dockertest.Soak() {
			points = 30
		}
		t.Logf("a spawn takes %v; killing at %d points through it", took.Round(time.Millisecond),
			points)
		outcomes := map[string]int{}
		for i := 0; i < points; i++ {
			id := e.project()
			secrets := ProjectSecrets{JWTSecret: fmt.Sprintf("jwt-%d", i),
				DBPassword: fmt.Sprintf("pw-%d", i)}
			e.db.seed(t, id, "active", secrets.JWTSecret, secrets.DBPassword)
			answered := viaProcess.spawnAsync(id)
			// Spread quadratically: most of a spawn is the wait for readiness, the
			// steps before it (config, PgBouncer, create, start) come in the first tenth.
			time.Sleep(took * time.Duration(i*i) / time.Duration(points*points))
			m.kill()
			<-answered
			m.start()
			outcomes[e.wholeOrGone(id, BuildPostgRESTConfig(id, id, secrets))]++
			if a := viaProcess.destroy(id); a.status != 200 {
				t.Errorf("destroy after restart: got %d %s, want 200", a.status, a.raw)
			}
			e.wantNothingLeft(id)
		}
		t.Logf("after %d kills and restarts: %v", points, outcomes)
		if outcomes["half"] != 0 {
			t.Errorf("%d projects left half there", outcomes["half"])
		}
	})
}

// TestManagerDependenciesDown takes the proxy and the platform database away around spawns
// and destroys: the answer is a 500 naming what does not answer, nothing is left half
// done, and the next call succeeds once it is back.
func TestManagerDependenciesDown(t *testing.T) {
	e := setupE2E(t)
	// A proxy that can be stopped and started again on one address.
	fixed := dockertest.FreePort(t)
	startProxy := func() *dockertest.Proxy {
		return dockertest.StartProxy(t, dockertest.ProxyOptions{
			Args: []string{"-listen", "tcp://" + fixed}})
	}
	px := startProxy()
	cfg := e.cfg
	cfg.DockerHost = "tcp://" + fixed
	cfg.SpawnReadyTimeout = 3 * time.Second
	svc := e.newService(cfg)
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	m := e.via(srv.URL, svc)
	stopProxy := func() {
		t.Helper()
		if err := px.Stop(); err != nil {
			t.Fatalf("stopping the proxy: %v", err)
		}
	}
	wantNamesProxy := func(a answer, code string) {
		t.Helper()
		msg, _ := a.body["message"].(string)
		if a.status != 500 || a.body["error"] != code ||
			!strings.Contains(msg, "sockpin proxy at tcp://"+fixed) {
			t.Errorf("got %d %s, want 500 %s naming the proxy at tcp://%s", a.status, a.raw,
				code, fixed)
		}
	}

	id := m.project()
	secrets := ProjectSecrets{JWTSecret: "jwt-down", DBPassword: "pw-down"}
	e.db.seed(t, id, "active", secrets.JWTSecret, secrets.DBPassword)
	config := BuildPostgRESTConfig(id, id, secrets)

	t.Run("proxy-down-spawn", func(t *testing.T) {
		stopProxy()
		reloads := e.pgb.Reloads()
		start := time.Now()
		a := m.spawn(id)
		t.Logf("answer after %v: %s", time.Since(start).Round(time.Millisecond), a.raw)
		wantNamesProxy(a, "spawn_failed")
		if h := m.call("GET", "/health", "", nil); h.status != 503 ||
			!strings.Contains(h.raw, `"docker":"unavailable"`) {
			t.Errorf("health: got %d %s, want 503 with docker unavailable", h.status, h.raw)
		}
		if got := m.wholeOrGone(id, config); got != "gone" {
			t.Errorf("after the failed spawn: project is %s, want gone", got)
		}
		if e.pgb.Reloads() != reloads {
			t.Error("PgBouncer reloaded by a spawn that could not reach Docker")
		}
		px = startProxy()
		if a := m.spawn(id); a.status != 201 {
			t.Errorf("spawn with the proxy back: got %d %s, want 201", a.status, a.raw)
		}
		if got := m.wholeOrGone(id, config); got != "whole" {
			t.Errorf("project is %s, want whole", got)
		}
	})

	t.Run("proxy-down-destroy", func(t *testing.T) {
		stopProxy()
		wantNamesProxy(m.destroy(id), "destroy_failed")
		if got := m.wholeOrGone(id, config); got != "whole" {
			t.Errorf("after the failed destroy: project is %s, want whole (nothing removed)",
				got)
		}
		px = startProxy()
		if a := m.destroy(id); a.status != 200 || a.body["status"] != "stopped" {
			t.Errorf("destroy with the proxy back: got %d %s, want 200 stopped", a.status, a.raw)
		}
		m.wantNothingLeft(id)
	})

	t.Run("proxy-lost-mid-spawn", func(t *testing.T) {
		lost := m.project()
		never := ProjectSecrets{JWTSecret: "standin-never-ready-" + lost, DBPassword: "pw-l"}
		e.db.seed(t, lost, "active", never.JWTSecret, never.DBPassword)
		answered := m.spawnAsync(lost)
		e.waitContainer(lost, "running", 30*time.Second)
		stopProxy()
		a := <-answered
		if a.status != 500 || !strings.Contains(a.raw, "spawn_failed") ||
			!strings.Contains(a.raw, "sockpin proxy at tcp://"+fixed) {
			t.Errorf("spawn: got %d %s, want 500 spawn_failed naming the proxy", a.status, a.raw)
		}
		// The container could not be removed: the rest stays with it.
		if got := m.wholeOrGone(lost, BuildPostgRESTConfig(lost, lost, never)); got != "whole" {
			t.Errorf("after the spawn that lost the proxy: project is %s, want whole", got)
		}
		px = startProxy()
		ready := ProjectSecrets{JWTSecret: "jwt-ready", DBPassword: never.DBPassword}
		e.db.rotate(t, lost, SecretJWT, ready.JWTSecret)
		if a := m.spawn(lost); a.status != 200 || a.body["status"] != "reloaded" {
			t.Errorf("spawn with the proxy back: got %d %s, want 200 reloaded", a.status, a.raw)
		}
		if got := m.wholeOrGone(lost, BuildPostgRESTConfig(lost, lost, ready)); got != "whole" {
			t.Errorf("project is %s, want whole", got)
		}
		if a := m.destroy(lost); a.status != 200 {
			t.Errorf("destroy: got %d %s, want 200", a.status, a.raw)
		}
		m.wantNothingLeft(lost)
	})

	t.Run("database-down-spawn-and-destroy", func(t *testing.T) {
		running := m.project()
		e.db.seed(t, running, "active", "jwt-r", "pw-r")
		if a := m.spawn(running); a.status != 201 {
			t.Fatalf("spawn: got %d %s", a.status, a.raw)
		}
		other := m.project()
		e.db.seed(t, other, "active", "jwt-o", "pw-o")
		e.db.stop(t)
		a := m.spawn(other)
		msg, _ := a.body["message"].(string)
		if a.status != 500 || a.body["error"] != "spawn_failed" ||
			!strings.HasPrefix(msg, "platform database unavailable: ") {
			t.Errorf("spawn with the database down: got %d %s, want 500 naming the database",
				a.status, a.raw)
		}
		m.wantNothingLeft(other)
		// Destroy needs no database.
		if a := m.destroy(running); a.status != 200 || a.body["status"] != "stopped" {
			t.Errorf("destroy with the database down: got %d %s, want 200 stopped", a.status,
				a.raw)
		}
		m.wantNothingLeft(running)
		e.db.start(t)
		if a := m.spawn(other); a.status != 201 {
			t.Errorf("spawn with the database back: got %d %s, want 201", a.status, a.raw)
		}
		m.destroy(other)
		m.wantNothingLeft(other)
	})
}

// TestManagerManyProjects spawns 50 projects at once, then destroys them at once: every
// call succeeds and each project has exactly its own container, config file and PgBouncer
// line, then nothing.
func TestManagerManyProjects(t *testing.T) {
	e := setupE2E(t)
	const n = 50
	iniBefore := e.pgb.INI()
	ids := make([]string, n)
	configs := make(map[string][]byte, n)
	for i := range ids {
		ids[i] = e.project()
		secrets := ProjectSecrets{JWTSecret: fmt.Sprintf("jwt-many-%d", i),
			DBPassword: fmt.Sprintf("pw-many-%d", i)}
		e.db.seed(t, ids[i], "active", secrets.JWTSecret, secrets.DBPassword)
		configs[ids[i]] = BuildPostgRESTConfig(ids[i], ids[i], secrets)
	}

	all := func(op func(id string) answer) ([]answer, time.Duration) {
		answers := make([]answer, n)
		var wg sync.WaitGroup
		start := time.Now()
		for i, id := range ids {
			wg.Go(func() { answers[i] = op(id) })
		}
		wg.Wait()
		return answers, time.Since(start)
	}

	answers, took := all(e.spawn)
	t.Logf("%d concurrent spawns answered within %v", n, took.Round(time.Millisecond))
	for i, a := range answers {
		if a.status != 201 {
			t.Errorf("spawn %s: got %d %s, want 201", ids[i], a.status, a.raw)
		}
	}
	for i, id := range ids {
		cs := e.containers(id)
		if len(cs) != 1 || cs[0].Names[0] != "/"+ContainerName(id) ||
			cs[0].Labels[LabelProject] != id || cs[0].State != "running" {
			t.Errorf("project %s: containers %+v, want its own one running", id, cs)
			continue
		}
		if a := answers[i]; a.body["containerId"] != cs[0].ID {
			t.Errorf("project %s: answered containerId %v, want %s", id, a.body["containerId"],
				cs[0].ID)
		}
		if got := e.wholeOrGone(id, configs[id]); got != "whole" {
			t.Errorf("project %s is %s, want whole", id, got)
		}
		if sha := e.served(id); sha != sha256Hex(configs[id]) {
			t.Errorf("project %s: its container serves config %s, want its own %s", id, sha,
				sha256Hex(configs[id]))
		}
	}
	projectLines := 0
	for _, line := range strings.Split(e.pgb.INI(), "\n") {
		if strings.HasPrefix(line, "proj_") {
			projectLines++
		}
	}
	if projectLines != n {
		t.Errorf("PgBouncer project lines: got %d, want %d", projectLines, n)
	}

	answers, took = all(e.destroy)
	t.Logf("%d concurrent destroys answered within %v", n, took.Round(time.Millisecond))
	for i, a := range answers {
		if a.status != 200 || a.body["status"] != "stopped" {
			t.Errorf("destroy %s: got %d %s, want 200 stopped", ids[i], a.status, a.raw)
		}
	}
	for _, id := range ids {
		e.wantNothingLeft(id)
	}
	if got := e.pgb.INI(); got != iniBefore {
		t.Errorf("pgbouncer.ini after all destroys:\n%s\nwant as before:\n%s", got, iniBefore)
	}
}
