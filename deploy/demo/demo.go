package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
	"github.com/jackc/pgx/v5"

	"github.com/launchdb/sockpin/internal/pgtest"
	"github.com/launchdb/sockpin/internal/standin"
)

// composeProject is the Compose project name of the demo's services.
const composeProject = "sockpin-demo"

// Manager settings the demo's platform database and manager share.
const (
	managerDSN = "postgres://" + pgtest.ManagerRole + ":" + pgtest.ManagerPassword +
		"@/platform?host=/run/platform-db&port=5432&sslmode=disable"
	postgrestImage = "launchdb/postgrest:v1"
)

// demo is one run: what it created, and where the services listen on 127.0.0.1.
type demo struct {
	o       options
	cli     *client.Client
	p       *printer
	runID   string
	dir     string
	db      *platformDB
	project string
	apiKey  string

	proxyContainer string
	proxyAPI       string // host:port of the proxy's Engine API
	proxyMetrics   string
	managerURL     string
}

func newDemo(o options, cli *client.Client, p *printer) (*demo, error) {
	d := &demo{o: o, cli: cli, p: p, runID: randomString(12),
		project: "proj_demo" + randomString(12)}
	key := make([]byte, 32)
	rand.Read(key)
	d.apiKey = hex.EncodeToString(key)
	return d, nil
}

// labels returns the labels of every object the demo creates.
func (d *demo) labels() map[string]string {
	l := map[string]string{runLabel: d.runID}
	if k, v, ok := strings.Cut(d.o.label, "="); ok {
		l[k] = v
	}
	return l
}

// run is the demo, step by step.
func (d *demo) run(ctx context.Context) error {
	if err := preflight(ctx, d.cli, d.p); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sockpin-demo-")
	if err != nil {
		return err
	}
	d.dir = dir
	// Containers read files here: the daemon's users need to traverse it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	masterKey := make([]byte, 32)
	rand.Read(masterKey)

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"starting the platform database", d.startDatabase},
		{"seeding the platform database", func(ctx context.Context) error {
			return d.seed(ctx, masterKey)
		}},
		{"building the stand-in images", d.buildStandins},
		{"starting the services", func(ctx context.Context) error {
			return d.composeUp(ctx, masterKey)
		}},
		{"waiting for the manager", d.waitManager},
		{"spawning a project", d.spawnAndDestroy},
		{"sending docker run --privileged through the proxy", d.privileged},
		{"reading the audit log and metrics", d.observe},
	}
	for _, s := range steps {
		if err := s.fn(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

func (d *demo) startDatabase(ctx context.Context) error {
	var err error
	if _, statErr := os.Stat(filepath.Join(d.o.pgBin, "initdb")); statErr == nil {
		d.db, err = startLocalPostgres(ctx, d.o.pgBin, d.dir)
	} else {
		d.p.step("no PostgreSQL binaries in %s: using the image %s", d.o.pgBin, d.o.pgImage)
		d.db, err = startImagePostgres(ctx, d.cli, d.o.pgImage, d.dir, d.labels())
	}
	if err != nil {
		return err
	}
	d.p.step("PostgreSQL for the platform database (%s), socket in %s", d.db.about,
		d.db.socketDir)
	return nil
}

// seed creates the platform schema, the manager's read-only role and an active project
// with encrypted secrets, as platform-api leaves them before it calls spawn.
func (d *demo) seed(ctx context.Context, masterKey []byte) error {
	conn, err := pgx.Connect(ctx, d.db.dsn("postgres"))
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE platform")
	conn.Close(ctx)
	if err != nil {
		return err
	}
	dsn := d.db.dsn("platform")
	if err := pgtest.CreatePlatformSchema(ctx, dsn); err != nil {
		return err
	}
	err = pgtest.SeedProject(ctx, dsn, masterKey, pgtest.Project{ID: d.project,
		JWTSecret: randomString(40), DBPassword: randomString(24)})
	if err != nil {
		return err
	}
	d.p.step("platform database: schema, role %s, project %s (active, secrets encrypted)",
		pgtest.ManagerRole, d.project)
	return nil
}

// buildStandins imports the PostgREST stand-in as launchdb/postgrest:v1, the image the
// policy pins, and the PgBouncer stand-in.
func (d *demo) buildStandins(ctx context.Context) error {
	program, err := os.ReadFile(d.o.standin)
	if err != nil {
		return fmt.Errorf("reading the stand-in program (make bin/standin): %w", err)
	}
	busybox, err := os.ReadFile(standin.BusyboxPath)
	if err != nil {
		return fmt.Errorf("the PgBouncer stand-in needs a static BusyBox at %s "+
			"(apt-get install busybox-static): %w", standin.BusyboxPath, err)
	}
	applets, err := standin.Applets(standin.BusyboxPath)
	if err != nil {
		return err
	}
	if _, err := standin.Import(ctx, d.cli, postgrestImage, standin.PostgREST(program),
		d.labels()); err != nil {
		return err
	}
	_, err = standin.Import(ctx, d.cli, d.pgbouncerImage(),
		standin.PgBouncer(program, busybox, applets), d.labels())
	if err != nil {
		return err
	}
	d.p.step("stand-in images: %s (PostgREST), %s (PgBouncer)", postgrestImage,
		d.pgbouncerImage())
	return nil
}

func (d *demo) pgbouncerImage() string {
	return "sockpin-demo/pgbouncer:" + d.runID
}

// composeUp starts deploy/compose.yaml with the demo's additions.
func (d *demo) composeUp(ctx context.Context, masterKey []byte) error {
	if err := os.WriteFile(filepath.Join(d.dir, "pgbouncer.ini"),
		[]byte(standin.PgBouncerINI), 0o644); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(d.dir, "pgbouncer-state"), 0o755); err != nil {
		return err
	}
	var sock syscall.Stat_t
	if err := syscall.Stat(d.o.socket, &sock); err != nil {
		return fmt.Errorf("reading the Docker socket's group: %w", err)
	}
	policy, err := repoFile("policy.yaml")
	if err != nil {
		return err
	}
	env := map[string]string{
		"DOCKER_GID":                   fmt.Sprint(sock.Gid),
		"INTERNAL_API_KEY":             d.apiKey,
		"LAUNCHDB_MASTER_KEY":          base64.StdEncoding.EncodeToString(masterKey),
		"POSTGREST_MANAGER_PASSWORD":   pgtest.ManagerPassword,
		"SOCKPIN_PROXY_IMAGE":          d.o.proxyImage,
		"SOCKPIN_MANAGER_IMAGE":        d.o.managerImage,
		"SOCKPIN_POLICY_FILE":          policy,
		"SOCKPIN_DEMO_RUN":             d.runID,
		"SOCKPIN_DEMO_EXTRA_LABEL":     d.o.label,
		"SOCKPIN_DEMO_DSN":             managerDSN,
		"SOCKPIN_DEMO_DB_SOCKET":       d.db.socketDir,
		"SOCKPIN_DEMO_PGBOUNCER_IMAGE": d.pgbouncerImage(),
		"SOCKPIN_DEMO_DIR":             d.dir,
	}
	if d.o.label == "" {
		delete(env, "SOCKPIN_DEMO_EXTRA_LABEL")
	}
	d.p.step("docker-compose up: deploy/compose.yaml with deploy/demo/compose.yaml "+
		"(proxy %s, manager %s)", d.o.proxyImage, d.o.managerImage)
	if err := d.compose(ctx, env, "up", "-d"); err != nil {
		return err
	}
	return d.findServices(ctx)
}

// compose runs Compose on the demo's files with env added to the environment, its
// output indented under the current step.
func (d *demo) compose(ctx context.Context, env map[string]string, args ...string) error {
	command, err := composeCommand()
	if err != nil {
		return err
	}
	files := []string{"-p", composeProject, "-f", "deploy/compose.yaml",
		"-f", "deploy/demo/compose.yaml"}
	argv := append(append(command[1:], files...), args...)
	cmd := exec.CommandContext(ctx, command[0], argv...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	d.p.detail("%s", out)
	if err != nil {
		return fmt.Errorf("%s %s: %w", strings.Join(command, " "), strings.Join(args, " "), err)
	}
	return nil
}

// findServices reads where the services' ports are published on 127.0.0.1.
func (d *demo) findServices(ctx context.Context) error {
	proxy, err := d.service(ctx, "docker-socket-proxy")
	if err != nil {
		return err
	}
	manager, err := d.service(ctx, "postgrest-manager")
	if err != nil {
		return err
	}
	d.proxyContainer = strings.TrimPrefix(proxy.Name, "/")
	d.proxyAPI = published(proxy, "2375/tcp")
	d.proxyMetrics = published(proxy, "9102/tcp")
	d.managerURL = "http://" + published(manager, "9000/tcp")
	if d.proxyAPI == "" || d.proxyMetrics == "" || manager.NetworkSettings == nil {
		return errors.New("the services' ports are not published")
	}
	return nil
}

func (d *demo) service(ctx context.Context, name string) (container.InspectResponse, error) {
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "com.docker.compose.project="+composeProject),
		filters.Arg("label", "com.docker.compose.service="+name))})
	if err != nil {
		return container.InspectResponse{}, err
	}
	if len(cs) != 1 {
		return container.InspectResponse{}, fmt.Errorf("%d running containers of service %s, "+
			"want 1", len(cs), name)
	}
	return d.cli.ContainerInspect(ctx, cs[0].ID)
}

func published(c container.InspectResponse, port nat.Port) string {
	if c.NetworkSettings == nil || len(c.NetworkSettings.Ports[port]) == 0 {
		return ""
	}
	return "127.0.0.1:" + c.NetworkSettings.Ports[port][0].HostPort
}

// waitManager polls the manager's /health until it answers 200: database, Docker
// through the proxy, and a writable config volume.
func (d *demo) waitManager(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for {
		status, body, err := d.call(ctx, "GET", "/health", "")
		if err == nil && status == http.StatusOK {
			d.p.step("manager healthy: GET /health → %d %s", status, body)
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("GET /health: %d %s", status, body)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// call sends a request to the manager's API with the internal key.
func (d *demo) call(ctx context.Context, method, path, body string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, d.managerURL+path,
		strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("X-Internal-Key", d.apiKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, compactJSON(data), err
}

// show sends a request to the manager, prints it and the answer, and fails unless the
// status is want.
func (d *demo) show(ctx context.Context, want int, method, path, body string) error {
	d.p.detail("%s", strings.TrimSpace(method+" "+path+" "+body))
	status, answer, err := d.call(ctx, method, path, body)
	if err != nil {
		return err
	}
	d.p.detail("→ %d %s", status, answer)
	if status != want {
		return fmt.Errorf("%s %s: got %d, want %d", method, path, status, want)
	}
	return nil
}
