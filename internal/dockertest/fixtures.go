package dockertest

import (
	"maps"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// Network creates a bridge network called name with the run label and
// removes it on cleanup. A network of that name without this run's label
// fails the test; one this run already made is reused and left to the
// cleanup of whoever made it.
func Network(t testing.TB, cli *client.Client, name string) string {
	t.Helper()
	c, cancel := callCtx()
	defer cancel()
	existing, err := cli.NetworkInspect(c, name, network.InspectOptions{})
	switch {
	case err == nil && existing.Name == name && ours(existing.Labels):
		return existing.ID
	case err == nil && existing.Name == name:
		t.Fatalf("network %q already exists and %s; refusing to touch it "+
			"(remove it with `docker network rm %s` if it is a leftover)",
			name, ownership(existing.Labels), name)
	case err != nil && !cerrdefs.IsNotFound(err):
		t.Fatalf("inspecting network %q: %v", name, err)
	}
	created, err := cli.NetworkCreate(c, name, network.CreateOptions{
		Driver: "bridge",
		Labels: Labels(),
	})
	if err != nil {
		t.Fatalf("creating network %q: %v", name, err)
	}
	t.Cleanup(func() {
		c, cancel := callCtx()
		defer cancel()
		if err := cli.NetworkRemove(c, created.ID); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("removing network %q: %v", name, err)
		}
	})
	return created.ID
}

// Volume creates a local volume called name with the run label and removes
// it on cleanup, with the same ownership rules as Network.
func Volume(t testing.TB, cli *client.Client, name string) {
	t.Helper()
	createVolume(t, cli, volume.CreateOptions{Name: name, Driver: "local", Labels: Labels()})
}

// BindVolume creates a named volume backed by the host directory dir (local
// driver, bind options), so files a process on the host writes into dir are
// what containers mounting the volume see. Ownership rules as for Network.
func BindVolume(t testing.TB, cli *client.Client, name, dir string) {
	t.Helper()
	createVolume(t, cli, volume.CreateOptions{
		Name:       name,
		Driver:     "local",
		DriverOpts: map[string]string{"type": "none", "o": "bind", "device": dir},
		Labels:     Labels(),
	})
}

func createVolume(t testing.TB, cli *client.Client, opts volume.CreateOptions) {
	t.Helper()
	c, cancel := callCtx()
	defer cancel()
	existing, err := cli.VolumeInspect(c, opts.Name)
	switch {
	case err == nil && ours(existing.Labels):
		return
	case err == nil:
		t.Fatalf("volume %q already exists and %s; refusing to touch it "+
			"(remove it with `docker volume rm %s` if it is a leftover)",
			opts.Name, ownership(existing.Labels), opts.Name)
	case !cerrdefs.IsNotFound(err):
		t.Fatalf("inspecting volume %q: %v", opts.Name, err)
	}
	if _, err := cli.VolumeCreate(c, opts); err != nil {
		t.Fatalf("creating volume %q: %v", opts.Name, err)
	}
	t.Cleanup(func() {
		c, cancel := callCtx()
		defer cancel()
		err := cli.VolumeRemove(c, opts.Name, false)
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("removing volume %q: %v", opts.Name, err)
		}
	})
}

// Spec describes a container for Container. Zero fields take the image's
// defaults; Labels are added to the run label.
type Spec struct {
	Name        string
	Image       string
	Entrypoint  []string
	Cmd         []string
	Env         []string
	Labels      map[string]string
	Network     string
	Binds       []string
	Healthcheck *container.HealthConfig
}

// Container creates and starts a container from spec with the run label and
// FixtureLabel, and removes it (forced) on cleanup. It returns the container ID. A container
// that already has spec.Name fails the test, whoever made it.
func Container(t testing.TB, cli *client.Client, spec Spec) string {
	t.Helper()
	c, cancel := callCtx()
	defer cancel()
	if spec.Name != "" {
		existing, err := cli.ContainerInspect(c, spec.Name)
		switch {
		case err == nil && strings.TrimPrefix(existing.Name, "/") == spec.Name:
			t.Fatalf("container %q already exists and %s; refusing to touch it "+
				"(remove it with `docker rm -f %s` if it is a leftover)",
				spec.Name, ownership(existing.Config.Labels), spec.Name)
		case err != nil && !cerrdefs.IsNotFound(err):
			t.Fatalf("inspecting container %q: %v", spec.Name, err)
		}
	}
	labels := Labels()
	maps.Copy(labels, spec.Labels)
	labels[RunLabel] = RunID()
	labels[FixtureLabel] = RunID()
	created, err := cli.ContainerCreate(c, &container.Config{
		Image:       spec.Image,
		Entrypoint:  spec.Entrypoint,
		Cmd:         spec.Cmd,
		Env:         spec.Env,
		Labels:      labels,
		Healthcheck: spec.Healthcheck,
	}, &container.HostConfig{
		NetworkMode: container.NetworkMode(spec.Network),
		Binds:       spec.Binds,
	}, nil, nil, spec.Name)
	if err != nil {
		t.Fatalf("creating container %q from %q: %v", spec.Name, spec.Image, err)
	}
	t.Cleanup(func() { removeContainer(t, cli, created.ID) })
	if err := cli.ContainerStart(c, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting container %q: %v", spec.Name, err)
	}
	return created.ID
}

// RemoveContainerOnCleanup removes, forced, the container called exactly
// name when the test ends, if it exists then. It is for containers the code
// under test creates, which cannot carry the run label: give them names
// unique to the run (see ProjectID).
func RemoveContainerOnCleanup(t testing.TB, cli *client.Client, name string) {
	t.Helper()
	t.Cleanup(func() {
		c, cancel := callCtx()
		defer cancel()
		existing, err := cli.ContainerInspect(c, name)
		if cerrdefs.IsNotFound(err) {
			return
		}
		if err != nil {
			t.Errorf("inspecting container %q for removal: %v", name, err)
			return
		}
		// Inspect also resolves ID prefixes; remove only an exact name match.
		if strings.TrimPrefix(existing.Name, "/") != name {
			return
		}
		removeContainer(t, cli, existing.ID)
	})
}

func removeContainer(t testing.TB, cli *client.Client, id string) {
	t.Helper()
	c, cancel := callCtx()
	defer cancel()
	err := cli.ContainerRemove(c, id, container.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		t.Errorf("removing container %s: %v", shortID(id), err)
	}
}

// WaitContainer polls the container until cond accepts its state or the
// timeout passes, and returns the last inspect answer. It fails the test on
// timeout.
func WaitContainer(t testing.TB, cli *client.Client, ref string, timeout time.Duration,
	cond func(container.InspectResponse) bool,
) container.InspectResponse {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, cancel := callCtx()
		got, err := cli.ContainerInspect(c, ref)
		cancel()
		if err == nil && cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			state := "no answer"
			if got.State != nil {
				state = got.State.Status
			}
			t.Fatalf("container %q: condition not met within %v (state %s, last error %v)",
				ref, timeout, state, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ExecResult is the outcome of Exec.
type ExecResult struct {
	ExitCode int
	Stdout   string
	Stderr   string
}

// Exec runs cmd as root in the running container ref, the way the manager
// runs its PgBouncer script (stdout and stderr attached, no tty, no stdin),
// and returns its exit code and output once it has finished.
func Exec(t testing.TB, cli *client.Client, ref string, cmd ...string) ExecResult {
	t.Helper()
	c, cancel := callCtx()
	defer cancel()
	created, err := cli.ContainerExecCreate(c, ref, container.ExecOptions{
		User: "root", AttachStdout: true, AttachStderr: true, Cmd: cmd,
	})
	if err != nil {
		t.Fatalf("creating exec %q in %s: %v", cmd, ref, err)
	}
	attached, err := cli.ContainerExecAttach(c, created.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("starting exec %q in %s: %v", cmd, ref, err)
	}
	defer attached.Close()
	var stdout, stderr strings.Builder
	if _, err := stdcopy.StdCopy(&stdout, &stderr, attached.Reader); err != nil {
		t.Fatalf("reading exec %q output: %v", cmd, err)
	}
	inspect, err := cli.ContainerExecInspect(c, created.ID)
	if err != nil {
		t.Fatalf("inspecting exec %q: %v", cmd, err)
	}
	return ExecResult{ExitCode: inspect.ExitCode, Stdout: stdout.String(), Stderr: stderr.String()}
}
