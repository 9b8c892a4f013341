package manager

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakePlatform is an in-memory platform database.
type fakePlatform struct {
	mu       sync.Mutex
	projects map[string]Project
	secrets  map[string][]byte // key: projectID + "/" + type
	err      error             // returned by every call when set
}

func newFakePlatform() *fakePlatform {
	return &fakePlatform{projects: map[string]Project{}, secrets: map[string][]byte{}}
}

func (p *fakePlatform) Project(_ context.Context, id string) (Project, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return Project{}, p.err
	}
	pr, ok := p.projects[id]
	if !ok {
		return Project{}, ErrNotFound
	}
	return pr, nil
}

func (p *fakePlatform) Secret(_ context.Context, id, typ string) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return nil, p.err
	}
	b, ok := p.secrets[id+"/"+typ]
	if !ok {
		return nil, ErrNotFound
	}
	return b, nil
}

func (p *fakePlatform) Ping(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *fakePlatform) set(id string, pr Project, secrets map[string][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.projects[id] = pr
	for typ, b := range secrets {
		p.secrets[id+"/"+typ] = b
	}
}

// fakeEngine is an in-memory Docker Engine. Execs in the PgBouncer container run the
// argv with the local sh, with the ini path pointed at a local file.
type fakeEngine struct {
	t        *testing.T
	mu       sync.Mutex
	byName   map[string]*fakeContainer
	execs    map[string]*fakeExec
	ini      string // local file standing in for PGBOUNCER_INI
	calls    []string
	fail     map[string]error // by call name (e.g. "create", "stop")
	nextID   int
	ip       string         // address inspect reports on launchdb-internal
	inCreate map[string]int // concurrent creates per name, to catch missing serialisation

	// Container lifecycle calls (create, start, stop, restart, remove) each take
	// lifecycleDelay; inLifecycle counts those in progress, maxLifecycle the most at once.
	lifecycleDelay            time.Duration
	inLifecycle, maxLifecycle int
}

var lifecycleKinds = map[string]bool{"create": true, "start": true, "stop": true,
	"restart": true, "remove": true}

type fakeContainer struct {
	id      string
	name    string
	cfg     container.Config
	host    container.HostConfig
	running bool
	started time.Time
}

type fakeExec struct {
	argv     []string
	exitCode int
	running  bool
}

const fakePgBouncer = "launchdb-pgbouncer"

func newFakeEngine(t *testing.T) *fakeEngine {
	ini := filepath.Join(t.TempDir(), "pgbouncer.ini")
	if err := os.WriteFile(ini,
		[]byte("[databases]\nplatform = host=postgres dbname=platform\n\n[pgbouncer]\n"),
		0o644); err != nil {
		t.Fatal(err)
	}
	e := &fakeEngine{t: t, byName: map[string]*fakeContainer{}, execs: map[string]*fakeExec{},
		ini: ini, fail: map[string]error{}, ip: "172.18.0.9", inCreate: map[string]int{}}
	e.byName[fakePgBouncer] = &fakeContainer{id: strings.Repeat("b", 64), name: fakePgBouncer,
		running: true,
		cfg:     container.Config{Labels: map[string]string{"io.launchdb.role": "pgbouncer"}}}
	return e
}

func (e *fakeEngine) record(call string) error {
	kind := strings.Fields(call)[0]
	e.mu.Lock()
	e.calls = append(e.calls, call)
	err, delay := e.fail[kind], e.lifecycleDelay
	if lifecycleKinds[kind] {
		e.inLifecycle++
		e.maxLifecycle = max(e.maxLifecycle, e.inLifecycle)
	}
	e.mu.Unlock()
	if lifecycleKinds[kind] {
		time.Sleep(delay)
		e.mu.Lock()
		e.inLifecycle--
		e.mu.Unlock()
	}
	return err
}

func (e *fakeEngine) callList() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.calls...)
}

func (e *fakeEngine) count(prefix string) int {
	n := 0
	for _, c := range e.callList() {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func (e *fakeEngine) setFail(call string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil {
		delete(e.fail, call)
	} else {
		e.fail[call] = err
	}
}

func notFoundErr(what string) error {
	return fmt.Errorf("No such container: %s: %w", what, cerrdefs.ErrNotFound)
}

func (e *fakeEngine) lookup(ref string) *fakeContainer {
	if c, ok := e.byName[ref]; ok {
		return c
	}
	for _, c := range e.byName {
		if c.id == ref {
			return c
		}
	}
	return nil
}

func (e *fakeEngine) container(name string) (fakeContainer, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.lookup(name)
	if c == nil {
		return fakeContainer{}, false
	}
	return *c, true
}

func (e *fakeEngine) Ping(context.Context) (types.Ping, error) {
	return types.Ping{APIVersion: "1.41"}, e.record("ping")
}

func (e *fakeEngine) ContainerList(
	_ context.Context, opts container.ListOptions,
) ([]container.Summary, error) {
	if err := e.record("list"); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []container.Summary
	for _, c := range e.byName {
		if !opts.Filters.MatchKVList("label", c.cfg.Labels) || (!opts.All && !c.running) {
			continue
		}
		state, status := container.StateExited, "Exited (0) 1 second ago"
		switch {
		case c.running:
			state, status = container.StateRunning, "Up 1 second"
		case c.started.IsZero():
			state, status = container.StateCreated, "Created"
		}
		out = append(out, container.Summary{ID: c.id, Names: []string{"/" + c.name},
			Labels: c.cfg.Labels, State: state, Status: status})
	}
	return out, nil
}

func (e *fakeEngine) ContainerInspect(
	_ context.Context, ref string,
) (container.InspectResponse, error) {
	if err := e.record("inspect " + ref); err != nil {
		return container.InspectResponse{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.lookup(ref)
	if c == nil {
		return container.InspectResponse{}, notFoundErr(ref)
	}
	state := &container.State{Status: container.StateExited,
		StartedAt: c.started.Format(time.RFC3339Nano)}
	switch {
	case c.running:
		state.Status, state.Running = container.StateRunning, true
	case c.started.IsZero():
		state.Status = container.StateCreated
	}
	cfg, host := c.cfg, c.host
	nets := map[string]*network.EndpointSettings{"launchdb-internal": {IPAddress: e.ip}}
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID: c.id, Name: "/" + c.name, State: state, HostConfig: &host,
		},
		Config:          &cfg,
		NetworkSettings: &container.NetworkSettings{Networks: nets},
	}, nil
}

func (e *fakeEngine) ContainerCreate(
	_ context.Context, cfg *container.Config, host *container.HostConfig,
	nc *network.NetworkingConfig, pl *ocispec.Platform, name string,
) (container.CreateResponse, error) {
	e.mu.Lock()
	e.inCreate[name]++
	overlap := e.inCreate[name] > 1
	e.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	defer func() {
		e.mu.Lock()
		e.inCreate[name]--
		e.mu.Unlock()
	}()
	if overlap {
		e.t.Errorf("concurrent creates for %s", name)
	}
	if err := e.record("create " + name); err != nil {
		return container.CreateResponse{}, err
	}
	if nc != nil || pl != nil {
		e.t.Errorf("create %s: networking config %v, platform %v; want nil", name, nc, pl)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail["create-image "+cfg.Image]; err != nil {
		return container.CreateResponse{}, err
	}
	if e.byName[name] != nil {
		return container.CreateResponse{},
			fmt.Errorf("Conflict. The container name %q is already in use: %w",
				"/"+name, cerrdefs.ErrConflict)
	}
	e.nextID++
	id := fmt.Sprintf("%064x", e.nextID)
	e.byName[name] = &fakeContainer{id: id, name: name, cfg: *cfg, host: *host}
	return container.CreateResponse{ID: id}, nil
}

func (e *fakeEngine) withContainer(call, ref string, f func(c *fakeContainer)) error {
	if err := e.record(call + " " + ref); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.lookup(ref)
	if c == nil {
		return notFoundErr(ref)
	}
	f(c)
	return nil
}

func (e *fakeEngine) ContainerStart(_ context.Context, ref string, _ container.StartOptions) error {
	return e.withContainer("start", ref, func(c *fakeContainer) {
		c.running, c.started = true,
			time.Now()
	})
}

func (e *fakeEngine) ContainerStop(_ context.Context, ref string, _ container.StopOptions) error {
	return e.withContainer("stop", ref, func(c *fakeContainer) { c.running = false })
}

func (e *fakeEngine) ContainerRestart(
	_ context.Context, ref string, _ container.StopOptions,
) error {
	return e.withContainer("restart", ref, func(c *fakeContainer) {
		c.running, c.started = true,
			time.Now()
	})
}

func (e *fakeEngine) ContainerKill(_ context.Context, ref, signal string) error {
	return e.withContainer("kill "+signal, ref, func(*fakeContainer) {})
}

func (e *fakeEngine) ContainerRemove(
	_ context.Context, ref string, opts container.RemoveOptions,
) error {
	if err := e.record("remove " + ref); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.lookup(ref)
	if c == nil {
		return notFoundErr(ref)
	}
	if c.running && !opts.Force {
		return fmt.Errorf("container is running: %w", cerrdefs.ErrConflict)
	}
	delete(e.byName, c.name)
	return nil
}

func (e *fakeEngine) ContainerExecCreate(
	_ context.Context, ref string, opts container.ExecOptions,
) (container.ExecCreateResponse, error) {
	if err := e.record("exec " + ref); err != nil {
		return container.ExecCreateResponse{}, err
	}
	want := container.ExecOptions{User: "root", AttachStdout: true, AttachStderr: true,
		Cmd: opts.Cmd}
	if fmt.Sprint(opts) != fmt.Sprint(want) {
		e.t.Errorf("exec options: got %+v, want %+v", opts, want)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lookup(ref) == nil {
		return container.ExecCreateResponse{}, notFoundErr(ref)
	}
	e.nextID++
	id := fmt.Sprintf("exec%d", e.nextID)
	e.execs[id] = &fakeExec{argv: opts.Cmd, running: true}
	return container.ExecCreateResponse{ID: id}, nil
}

// ContainerExecAttach runs the exec's argv locally with sh, pointing INI_PATH at e.ini,
// and streams its output in Docker's multiplexed framing.
func (e *fakeEngine) ContainerExecAttach(
	_ context.Context, id string, _ container.ExecAttachOptions,
) (types.HijackedResponse, error) {
	if err := e.record("exec-start"); err != nil {
		return types.HijackedResponse{}, err
	}
	e.mu.Lock()
	x := e.execs[id]
	e.mu.Unlock()
	argv := append([]string(nil), x.argv...)
	argv[len(argv)-1] = e.ini
	var out bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = stdcopy.NewStdWriter(&out, stdcopy.Stdout)
	cmd.Stderr = stdcopy.NewStdWriter(&out, stdcopy.Stderr)
	err := cmd.Run()
	e.mu.Lock()
	x.running = false
	x.exitCode = cmd.ProcessState.ExitCode()
	e.mu.Unlock()
	if err != nil && cmd.ProcessState == nil {
		return types.HijackedResponse{}, err
	}
	client, server := net.Pipe()
	go func() {
		server.Write(out.Bytes())
		server.Close()
	}()
	return types.HijackedResponse{Conn: client, Reader: bufio.NewReader(client)}, nil
}

func (e *fakeEngine) ContainerExecInspect(
	_ context.Context, id string,
) (container.ExecInspect, error) {
	if err := e.record("exec-inspect"); err != nil {
		return container.ExecInspect{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.execs[id]
	return container.ExecInspect{ExecID: id, Running: x.running, ExitCode: x.exitCode}, nil
}

// databaseLines returns the ini lines that define id's database.
func (e *fakeEngine) databaseLines(id string) []string {
	data, err := os.ReadFile(e.ini)
	if err != nil {
		e.t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, id); ok && strings.HasPrefix(strings.TrimLeft(rest,
			" "), "=") {
			lines = append(lines, l)
		}
	}
	return lines
}
