package deploy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/launchdb/sockpin/internal/dockertest"
)

// TestMakeDemoWithoutDaemon runs `make demo` against a socket nobody listens on: one
// clear message, no image build.
func TestMakeDemoWithoutDaemon(t *testing.T) {
	socket := t.TempDir() + "/docker.sock"
	out, err := command(t, nil, "make", "--no-print-directory", "demo",
		"DEMO_FLAGS=-socket "+socket)
	if err == nil {
		t.Fatalf("make demo without a daemon succeeded:\n%s", out)
	}
	want := "demo: the Docker daemon does not answer on " + socket
	if strings.Count(out, "demo: ") != 1 || !strings.Contains(out, want) {
		t.Errorf("output: got\n%s\nwant one line %q", out, want)
	}
	if strings.Contains(out, "docker build") {
		t.Errorf("make demo built images without a daemon:\n%s", out)
	}
}

// demoRun is bin/demo running as a subprocess of the test, on this test run's images
// and with its run label.
type demoRun struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    strings.Builder
	lines  chan string
	exited chan error
}

func startDemo(t *testing.T, proxyImage, managerImage string) *demoRun {
	t.Helper()
	bin := dockertest.BuildBinary(t, "./deploy/demo")
	cmd := exec.Command(bin, "-locked",
		"-label", dockertest.RunLabel+"="+dockertest.RunID(),
		"-proxy-image", proxyImage, "-manager-image", managerImage,
		"-standin", dockertest.Standin(t))
	cmd.Dir = root(t)
	// A group of its own, so that a test can interrupt it as Ctrl-C does:
	// the demo and the processes it started (PostgreSQL) all get SIGINT.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	d := &demoRun{cmd: cmd, lines: make(chan string, 1000), exited: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			select {
			case d.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		w.Close()
		d.exited <- err
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		sweepRun(t)
	})
	return d
}

// interrupt sends SIGINT to the demo's process group, as Ctrl-C in a
// terminal does.
func (d *demoRun) interrupt() {
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT)
}

func (d *demoRun) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// wait waits for the demo to exit and returns its exit code.
func (d *demoRun) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case err := <-d.exited:
		time.Sleep(100 * time.Millisecond) // let the reader take the last lines
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		t.Fatalf("demo still running after %s:\n%s", timeout, d.output())
		return -1
	}
}

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo on the Docker daemon")
	}
	proxyImage, managerImage := images(t)
	cli := dockertest.Client(t)

	t.Run("spawns-destroys-and-shows-the-refusal", func(t *testing.T) {
		start := time.Now()
		d := startDemo(t, proxyImage, managerImage)
		if code := d.wait(t, 5*time.Minute); code != 0 {
			t.Fatalf("demo exit status %d:\n%s", code, d.output())
		}
		t.Logf("demo took %s", time.Since(start).Round(time.Second))
		for _, want := range []string{
			"manager healthy: GET /health → 200",
			`→ 201 {"projectId":"proj_demo`, `"status":"running"`,
			`"status":"reloaded"`, `"status":"stopped"`,
			"docker run -d --privileged launchdb/postgrest:v1",
			"HostConfig.Privileged",
			`"decision":"deny"`,
			`sockpin_requests_total{decision="deny",op="container.create"} 1`,
			"demo finished in",
		} {
			if !strings.Contains(d.output(), want) {
				t.Errorf("demo output lacks %q:\n%s", want, d.output())
			}
		}
		assertNothingLeft(t, cli)
	})

	t.Run("ctrl-c-cleans-up", func(t *testing.T) {
		d := startDemo(t, proxyImage, managerImage)
		for line := range d.lines {
			if strings.Contains(line, "manager healthy") {
				break
			}
		}
		d.interrupt()
		if code := d.wait(t, time.Minute); code != 130 {
			t.Errorf("exit status after SIGINT: got %d, want 130:\n%s", code, d.output())
		}
		if !strings.Contains(d.output(), "demo: interrupted") {
			t.Errorf("output lacks the interruption:\n%s", d.output())
		}
		assertNothingLeft(t, cli)
	})

	// Interrupted just after it asked for the spawn, while the manager is
	// creating the project's container: the container (which carries
	// LaunchDB's labels only) goes too, and with it what it holds.
	for _, delay := range []time.Duration{0, 50 * time.Millisecond, 200 * time.Millisecond} {
		t.Run(fmt.Sprintf("ctrl-c-%s-into-spawn-cleans-up", delay), func(t *testing.T) {
			d := startDemo(t, proxyImage, managerImage)
			for line := range d.lines {
				if strings.Contains(line, "POST /internal/postgrest/spawn") {
					break
				}
			}
			time.Sleep(delay)
			d.interrupt()
			if code := d.wait(t, time.Minute); code != 130 {
				t.Errorf("exit status after SIGINT: got %d, want 130:\n%s", code, d.output())
			}
			if strings.Contains(d.output(), "could not remove everything") {
				t.Errorf("cleanup failed:\n%s", d.output())
			}
			assertNothingLeft(t, cli)
		})
	}

	t.Run("refuses-names-it-did-not-create", func(t *testing.T) {
		dockertest.Network(t, cli, "launchdb-internal")
		d := startDemo(t, proxyImage, managerImage)
		if code := d.wait(t, time.Minute); code != 1 {
			t.Errorf("exit status: got %d, want 1", code)
		}
		want := "demo: network launchdb-internal already exist(s) and the demo did not create"
		if !strings.Contains(d.output(), want) {
			t.Errorf("output: got\n%s\nwant %q", d.output(), want)
		}
	})
}

// runFilter selects the objects of this test run.
func runFilter() filters.Args {
	return filters.NewArgs(filters.Arg("label", dockertest.RunLabel+"="+dockertest.RunID()))
}

// assertNothingLeft checks that the demo removed its containers, networks, volumes and
// stand-in images, and that LaunchDB's fixed names are free again.
func assertNothingLeft(t *testing.T, cli *client.Client) {
	t.Helper()
	ctx := context.Background()
	cs, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: runFilter()})
	ns, _ := cli.NetworkList(ctx, network.ListOptions{Filters: runFilter()})
	vs, _ := cli.VolumeList(ctx, volume.ListOptions{Filters: runFilter()})
	if len(cs)+len(ns)+len(vs.Volumes) > 0 {
		t.Errorf("left behind: %d containers, %d networks, %d volumes", len(cs), len(ns),
			len(vs.Volumes))
	}
	for _, ref := range []string{dockertest.PostgRESTImage} {
		if _, err := cli.ImageInspect(ctx, ref); !cerrdefs.IsNotFound(err) {
			t.Errorf("image %s left behind (%v)", ref, err)
		}
	}
	for _, name := range []string{"launchdb-pgbouncer", "launchdb-postgrest-manager"} {
		if _, err := cli.ContainerInspect(ctx, name); !cerrdefs.IsNotFound(err) {
			t.Errorf("container %s left behind (%v)", name, err)
		}
	}
	if _, err := cli.VolumeInspect(ctx, "launchdb_postgrest-projects"); !cerrdefs.IsNotFound(err) {
		t.Errorf("volume launchdb_postgrest-projects left behind (%v)", err)
	}
	if _, err := cli.NetworkInspect(ctx, "launchdb-internal", network.InspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("network launchdb-internal left behind (%v)", err)
	}
	// The demo's projects are proj_demo followed by random characters.
	projects, _ := cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("name", "^/postgrest-proj_demo"))})
	for _, c := range projects {
		t.Errorf("project container %s left behind", c.Names[0])
	}
}

// sweepRun removes what a demo killed by the test left: containers, networks and
// volumes with this run's label, and the stand-in images it imported.
func sweepRun(t *testing.T) {
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: runFilter()})
	for _, c := range cs {
		cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
	ns, _ := cli.NetworkList(ctx, network.ListOptions{Filters: runFilter()})
	for _, n := range ns {
		if n.Name != "launchdb-internal" || n.Labels["sockpin.demo.run"] != "" {
			cli.NetworkRemove(ctx, n.ID)
		}
	}
	vs, _ := cli.VolumeList(ctx, volume.ListOptions{Filters: runFilter()})
	for _, v := range vs.Volumes {
		if v.Labels["sockpin.demo.run"] != "" {
			cli.VolumeRemove(ctx, v.Name, true)
		}
	}
	is, _ := cli.ImageList(ctx, image.ListOptions{Filters: runFilter()})
	for _, i := range is {
		if i.Labels["sockpin.demo.run"] != "" {
			cli.ImageRemove(ctx, i.ID, imageRemoveOptions)
		}
	}
}
