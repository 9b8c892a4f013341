package proxy_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/launchdb/sockpin/internal/dockertest"
)

// TestDockerCLI uses the docker command line through the proxy, as a new
// user would with DOCKER_HOST: reads of managed containers work, the
// dangerous commands are refused with the sockpin reason, and no refused
// request reaches the daemon.
func TestDockerCLI(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		dockertest.Unavailable(t, "the docker command is not installed")
	}
	cli := dockertest.Client(t)
	dockertest.StandinImage(t, cli, dockertest.PostgRESTImage)
	dockertest.Network(t, cli, "launchdb-internal")
	const managed = "postgrest-proj_0123456789abcdef"
	dockertest.Container(t, cli, dockertest.Spec{Name: managed, Image: dockertest.PostgRESTImage,
		Entrypoint: []string{"/app", "sleep"}, Network: "launchdb-internal",
		Labels: map[string]string{"io.launchdb.role": "postgrest", "io.launchdb.project": "proj_0123456789abcdef"}})
	dockertest.Container(t, cli, dockertest.Spec{Name: "platform-postgres", Image: dockertest.PostgRESTImage,
		Entrypoint: []string{"/app", "sleep"}})
	relay := dockertest.StartRelay(t, "")
	px := dockertest.StartProxy(t, dockertest.ProxyOptions{Upstream: relay.Path()})

	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, docker, args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+px.DockerHost, "DOCKER_CONTEXT=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, ok := range []struct {
		args []string
		want string
	}{
		{[]string{"version", "--format", "{{.Server.APIVersion}}"}, "1."},
		{[]string{"ps", "-a", "--format", "{{.Names}}"}, managed},
		{[]string{"inspect", "--format", "{{.Config.Labels}}", managed}, "io.launchdb.project:proj_0123456789abcdef"},
	} {
		out, err := run(ok.args...)
		if err != nil || !strings.Contains(out, ok.want) {
			t.Errorf("docker %s: got %v %q, want success showing %q", strings.Join(ok.args, " "), err, out, ok.want)
		}
	}
	if out, _ := run("ps", "-a", "--format", "{{.Names}}"); strings.Contains(out, "platform-postgres") {
		t.Errorf("docker ps shows the unmanaged container: %q", out)
	}
	// The newest container is the unmanaged one. A limit counts only the
	// containers the client may see, so it neither takes the place nor
	// shows by a short answer that it exists.
	if out, err := run("ps", "-n", "1", "--format", "{{.Names}}"); err != nil || strings.TrimSpace(out) != managed {
		t.Errorf("docker ps -n 1: got %v %q, want the newest managed container, %s", err, out, managed)
	}
	relay.Reset()
	for _, refused := range [][]string{
		{"run", "--rm", "--privileged", dockertest.PostgRESTImage},
		{"run", "--rm", "-v", "/:/host", dockertest.PostgRESTImage},
		{"exec", "platform-postgres", "true"},
		{"volume", "ls"},
	} {
		out, err := run(refused...)
		if err == nil || !strings.Contains(out, "sockpin: ") {
			t.Errorf("docker %s: got %v %q, want a failure printing the sockpin reason",
				strings.Join(refused, " "), err, out)
		}
	}
	for _, r := range relay.Requests() {
		if r.Method != "GET" && r.Method != "HEAD" {
			t.Errorf("a refused command reached the daemon: %s", r)
		}
	}
}
