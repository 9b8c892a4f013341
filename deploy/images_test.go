package deploy_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/launchdb/sockpin/internal/dockertest"
	"github.com/launchdb/sockpin/internal/pgtest"
)

var imageRemoveOptions = image.RemoveOptions{Force: true, PruneChildren: true}

// hardened describes a container run the way deploy/compose.yaml runs the images:
// read-only root filesystem, every capability dropped, no-new-privileges, the image's
// own user.
type hardened struct {
	image   string
	groups  []string
	binds   []string
	env     []string
	network string
}

// start creates and starts c with the run label and removes it on cleanup.
func start(t *testing.T, cli *client.Client, c hardened) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	created, err := cli.ContainerCreate(ctx,
		&container.Config{Image: c.image, Env: c.env, Labels: dockertest.Labels()},
		&container.HostConfig{
			ReadonlyRootfs: true,
			CapDrop:        []string{"ALL"},
			SecurityOpt:    []string{"no-new-privileges:true"},
			GroupAdd:       c.groups,
			Binds:          c.binds,
			NetworkMode:    container.NetworkMode(c.network),
		}, nil, nil, "")
	if err != nil {
		t.Fatalf("creating a container of %s: %v", c.image, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if t.Failed() {
			logs, _ := logsOf(ctx, cli, created.ID)
			t.Logf("logs of %s:\n%s", c.image, logs)
		}
		cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true})
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting a container of %s: %v", c.image, err)
	}
	return created.ID
}

func logsOf(ctx context.Context, cli *client.Client, id string) (string, error) {
	r, err := cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true,
		ShowStderr: true})
	if err != nil {
		return "", err
	}
	defer r.Close()
	var buf bytes.Buffer
	_, err = stdcopy.StdCopy(&buf, &buf, r)
	return buf.String(), err
}

// process returns "UID GID SUPGID" of the container's main process, as ps prints them.
func process(t *testing.T, cli *client.Client, id string) string {
	t.Helper()
	top, err := cli.ContainerTop(context.Background(), id, []string{"-o", "pid,uid,gid,supgid"})
	if err != nil || len(top.Processes) != 1 {
		t.Fatalf("listing the container's processes: %v %v", top.Processes, err)
	}
	return strings.Join(top.Processes[0][1:], " ")
}

// socketGroup returns the group ID of the Docker socket.
func socketGroup(t *testing.T) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(dockertest.SocketPath, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(st.Gid)
}

// execIn runs argv in the running container as its own user and returns the exit code
// and output: the images have no shell, so argv is a binary of the image.
func execIn(t *testing.T, cli *client.Client, id string, argv ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: argv,
		AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	att, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	var out bytes.Buffer
	stdcopy.StdCopy(&out, &out, att.Reader)
	att.Close()
	insp, err := cli.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	return insp.ExitCode, out.String()
}

// files lists the regular files of an image with content, by creating (not starting) a
// container and exporting it.
func files(t *testing.T, cli *client.Client, ref string) []string {
	t.Helper()
	ctx := context.Background()
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: ref,
		Labels: dockertest.Labels()}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	r, err := cli.ContainerExport(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var names []string
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag != tar.TypeDir && hdr.Size > 0 {
			names = append(names, hdr.Name)
		}
	}
	slices.Sort(names)
	return names
}

func TestImages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images and runs them on the Docker daemon")
	}
	proxyTag, managerTag := images(t)
	cli := dockertest.Client(t)

	t.Run("images-hold-the-binary-and-no-shell", func(t *testing.T) {
		tests := []struct {
			ref, user string
			health    []string
			files     []string
		}{
			{proxyTag, "65532:65532", []string{"CMD", "/proxy", "health"},
				[]string{"etc/sockpin/policy.yaml", "proxy"}},
			{managerTag, "1001:1001", []string{"CMD", "/manager", "health"},
				[]string{"manager"}},
		}
		for _, tt := range tests {
			img, err := cli.ImageInspect(context.Background(), tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			if img.Config.User != tt.user {
				t.Errorf("%s: user: got %q, want %q", tt.ref, img.Config.User, tt.user)
			}
			if img.Config.Healthcheck == nil ||
				!slices.Equal(img.Config.Healthcheck.Test, tt.health) {
				t.Errorf("%s: healthcheck: got %+v, want %q", tt.ref,
					img.Config.Healthcheck, tt.health)
			}
			if got := files(t, cli, tt.ref); !slices.Equal(got, tt.files) {
				t.Errorf("%s: files: got %q, want %q", tt.ref, got, tt.files)
			}
		}
	})

	t.Run("proxy-reaches-the-daemon-through-the-socket-group-only", func(t *testing.T) {
		testProxyImage(t, cli, proxyTag)
	})
	t.Run("manager-runs-as-1001-and-writes-a-fresh-volume", func(t *testing.T) {
		testManagerImage(t, cli, managerTag)
	})
}

func testProxyImage(t *testing.T, cli *client.Client, ref string) {
	net := "sockpin-test-deploy-" + dockertest.RunID()
	dockertest.Network(t, cli, net)
	policy := filepath.Join(root(t), "policy.yaml")
	binds := []string{dockertest.SocketPath + ":" + dockertest.SocketPath + ":ro",
		policy + ":/etc/sockpin/policy.yaml:ro"}
	gid := socketGroup(t)
	id := start(t, cli, hardened{image: ref, groups: []string{gid}, binds: binds,
		network: net})
	if got, want := process(t, cli, id), "65532 65532 "+gid+",65532"; got != want {
		t.Errorf("proxy process uid gid groups: got %q, want %q", got, want)
	}
	healthy := func(c container.InspectResponse) bool {
		return c.State.Health != nil && c.State.Health.Status == "healthy"
	}
	c := dockertest.WaitContainer(t, cli, id, time.Minute, healthy)
	api := proxyClient(t, c, net)

	ctx := context.Background()
	if _, err := api.ContainerList(ctx, container.ListOptions{All: true}); err != nil {
		t.Errorf("listing containers through the proxy image: %v", err)
	}
	_, err := api.ContainerCreate(ctx, &container.Config{Image: dockertest.PostgRESTImage},
		&container.HostConfig{Privileged: true}, nil, nil, "")
	if err == nil || !strings.Contains(err.Error(), "HostConfig.Privileged is not allowed") {
		t.Errorf("privileged create through the proxy image: got %v, want the refusal", err)
	}
	if code, out := execIn(t, cli, id, "/proxy", "health", "-ready"); code != 0 {
		t.Errorf("proxy health -ready: exit %d: %s", code, out)
	}

	// Without the socket's group the same container reaches nothing: its access to the
	// daemon comes from that group, not from its user.
	id = start(t, cli, hardened{image: ref, binds: binds, network: net})
	hasAddress := func(c container.InspectResponse) bool {
		return c.NetworkSettings.Networks[net] != nil &&
			c.NetworkSettings.Networks[net].IPAddress != ""
	}
	c = dockertest.WaitContainer(t, cli, id, 10*time.Second, hasAddress)
	var code int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if code, _ = execIn(t, cli, id, "/proxy", "health"); code == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, out := execIn(t, cli, id, "/proxy", "health", "-ready"); code == 0 {
		t.Errorf("proxy without the socket's group is ready: %s", out)
	}
	if _, err := proxyClient(t, c, net).Ping(ctx); err == nil {
		t.Error("ping through a proxy without the socket's group: got success, want an error")
	}
}

// proxyClient returns a Docker client for the proxy container c on network net.
func proxyClient(t *testing.T, c container.InspectResponse, net string) *client.Client {
	t.Helper()
	var ep *network.EndpointSettings = c.NetworkSettings.Networks[net]
	api, err := client.NewClientWithOpts(client.WithHost("tcp://"+ep.IPAddress+":2375"),
		client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	return api
}

func testManagerImage(t *testing.T, cli *client.Client, ref string) {
	vol := "sockpin-test-projects-" + dockertest.RunID()
	dockertest.Volume(t, cli, vol)
	env := []string{"INTERNAL_API_KEY=k", "LAUNCHDB_MASTER_KEY=" + pgtest.MasterKeyBase64,
		"PLATFORM_DB_DSN=postgres://ro:pw@127.0.0.1:1/platform?sslmode=disable",
		"DOCKER_HOST=tcp://127.0.0.1:1"}
	id := start(t, cli, hardened{image: ref, env: env,
		binds: []string{vol + ":/etc/postgrest/projects"}})
	if got, want := process(t, cli, id), "1001 1001 1001"; got != want {
		t.Errorf("manager process uid gid groups: got %q, want %q", got, want)
	}
	// Start-up writes a file into the config directory and stops if it cannot. With the
	// database and Docker unreachable, the health check names those two and no more.
	var code int
	var out string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if code, out = execIn(t, cli, id, "/manager", "health"); strings.Contains(out, "503") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if code != 1 || !strings.Contains(out, `"database":"unavailable"`) ||
		strings.Contains(out, "config_dir") {
		t.Errorf("manager health: got exit %d %q, want 1 and a 503 naming the database "+
			"but not the config directory", code, out)
	}

	// The same image with a fresh volume at a path it does not own fails at start-up:
	// what the 1001-owned directory in the image prevents (spec finding 9).
	other := vol + "-root"
	dockertest.Volume(t, cli, other)
	id = start(t, cli, hardened{image: ref,
		env:   append(env, "POSTGREST_CONFIG_DIR=/data"),
		binds: []string{other + ":/data"}})
	exited := func(c container.InspectResponse) bool { return !c.State.Running }
	c := dockertest.WaitContainer(t, cli, id, 20*time.Second, exited)
	logs, _ := logsOf(context.Background(), cli, id)
	if c.State.ExitCode != 1 || !strings.Contains(logs, "not writable") {
		t.Errorf("manager on a root-owned volume: got exit %d %q, want 1 and not writable",
			c.State.ExitCode, logs)
	}
}
