package deploy_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/launchdb/sockpin/internal/dockertest"
)

// run marks a README command this file runs itself.
const run = "TestReadme runs it"

// readmeCommands maps every command README.md shows in an sh block to what exercises it.
// A README command missing here fails TestReadmeCommandsAreExercised: add it, with the
// test that runs it.
var readmeCommands = map[string]string{
	"make demo":   "make demo; TestDemo (its driver), TestMakeDemoWithoutDaemon",
	"make test":   ".ci/run",
	"make build":  run,
	"make images": "TestImages, TestDemo",

	"bin/proxy policy check policy.yaml":   run,
	"bin/proxy policy explain policy.yaml": run,
	"bin/proxy policy check filter/testdata/policies/contradictory-labels.yaml": "" +
		"TestPolicyCheck (cmd/proxy) on the same set; TestBrokenPolicies (filter)",
	"bin/proxy policy test policy.yaml testdata/redteam/cases.jsonl": "TestPolicyTest (cmd/proxy)",

	"bin/proxy -policy policy.yaml -listen tcp://127.0.0.1:2375 &": run,
	"DOCKER_HOST=tcp://127.0.0.1:2375 docker ps":                   run,

	"stat -c %g /var/run/docker.sock": run,
	// make demo runs deploy/compose.yaml with a second file the same way.
	"docker-compose -f docker-compose.yml -f /path/to/sockpin/deploy/compose.yaml up -d": "" +
		"make demo, TestDemo; TestComposeConfig, TestComposeDemoKeepsNames",

	"make load":  "TestSmoke (cmd/load) runs the same tool for a few seconds",
	"make bench": "make test runs every benchmark once",

	"bin/proxy policy migrate CONTAINERS=1 POST=1 EXEC=1 > my-policy.yaml": run,
	"bin/proxy policy check my-policy.yaml":                                run,
}

// readmeShellCommands returns the command lines of README.md's sh blocks, without
// trailing comments.
func readmeShellCommands(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	inBlock := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "```sh"):
			inBlock = true
		case strings.HasPrefix(line, "```"):
			inBlock = false
		case inBlock:
			cmd, _, _ := strings.Cut(line, " # ")
			if cmd = strings.TrimSpace(cmd); cmd != "" {
				cmds = append(cmds, cmd)
			}
		}
	}
	return cmds
}

func TestReadmeCommandsAreExercised(t *testing.T) {
	cmds := readmeShellCommands(t)
	if len(cmds) == 0 {
		t.Fatal("README.md shows no sh blocks")
	}
	for _, cmd := range cmds {
		if _, ok := readmeCommands[cmd]; !ok {
			t.Errorf("README command %q is exercised by nothing listed in readmeCommands", cmd)
		}
	}
}

// TestReadme runs the README's commands that need nothing but the binaries, in a
// directory that looks like the repository (bin/ and policy.yaml).
func TestReadme(t *testing.T) {
	if out, err := command(t, nil, "make", "build"); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(root(t), "bin"), filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	policy, err := os.ReadFile(filepath.Join(root(t), "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), policy, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cmd  string
		want string
	}{
		{"bin/proxy policy check policy.yaml", "policy.yaml: ok:"},
		{"bin/proxy policy explain policy.yaml", "Everything not"},
		{"bin/proxy policy migrate CONTAINERS=1 POST=1 EXEC=1 > my-policy.yaml", ""},
		{"bin/proxy policy check my-policy.yaml", "my-policy.yaml: ok:"},
		{"stat -c %g /var/run/docker.sock", ""},
	}
	for _, tt := range tests {
		cmd := exec.Command("sh", "-c", tt.cmd)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("%s: got %v\n%s\nwant success and %q", tt.cmd, err, out, tt.want)
		}
	}
	mig, _ := os.ReadFile(filepath.Join(dir, "my-policy.yaml"))
	if !strings.Contains(string(mig), "CHANGE-ME") {
		t.Errorf("migrated policy does not mark what to change:\n%s", mig)
	}
}

// TestReadmeProxy runs the README's proxy commands literally, then sends the refusals
// README.md quotes for each policy section and compares the proxy's answers with the
// README's text.
func TestReadmeProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the proxy in front of the Docker daemon")
	}
	cli := dockertest.Client(t)
	need(t, "docker")
	if out, err := command(t, nil, "make", "build"); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	// A container in no group, for the groups example.
	dockertest.StandinImage(t, cli, dockertest.PostgRESTImage)
	dockertest.Container(t, cli, dockertest.Spec{Name: "platform-postgres",
		Image: dockertest.PostgRESTImage})
	// The helper, visible but not to be stopped.
	dockertest.Network(t, cli, "launchdb-internal")
	dockertest.StartPgBouncer(t, cli, "launchdb-internal")

	proxy := exec.Command("sh", "-c", "exec "+strings.TrimSuffix(
		"bin/proxy -policy policy.yaml -listen tcp://127.0.0.1:2375 &", " &"))
	proxy.Dir = root(t)
	var logs strings.Builder
	proxy.Stdout, proxy.Stderr = &logs, &logs
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proxy.Process.Kill()
		proxy.Wait()
		if t.Failed() {
			t.Logf("proxy output:\n%s", logs.String())
		}
	})
	waitPort(t, "127.0.0.1:2375")

	ps := exec.Command("sh", "-c", "DOCKER_HOST=tcp://127.0.0.1:2375 docker ps")
	if out, err := ps.CombinedOutput(); err != nil {
		t.Errorf("docker ps through the proxy: %v\n%s", err, out)
	}

	readme, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`\s+`).ReplaceAllString(string(readme), " ")
	examples := []struct {
		method, path string
		status       int
		message      string
	}{
		{"GET", "/v1.40/containers/json", 400,
			"sockpin: API version 1.40 is outside the allowed 1.41 to 1.51"},
		{"GET", "/v1.41/info", 403, "sockpin: system.info is never allowed (rule default-deny)"},
		{"POST", "/containers/launchdb-pgbouncer/stop", 403, `sockpin: container ` +
			`"launchdb-pgbouncer" is in no group that allows container.stop (rule default-deny)`},
		{"POST", "/containers/platform-postgres/stop", 404, `sockpin: no container ` +
			`"platform-postgres" that this client may see`},
		{"POST", "/images/create?fromImage=launchdb/postgrest", 403, `sockpin: pulling ` +
			`"launchdb/postgrest" without a tag would pull every tag (rule default-deny)`},
	}
	for _, ex := range examples {
		status, body := send(t, ex.method, "http://127.0.0.1:2375"+ex.path)
		if status != ex.status || !strings.Contains(body, ex.message) {
			t.Errorf("%s %s: got %d %s, want %d %q", ex.method, ex.path, status, body,
				ex.status, ex.message)
		}
		if !strings.Contains(text, ex.message) {
			t.Errorf("README.md does not quote %q", ex.message)
		}
	}

	const privileged = "sockpin: field HostConfig.Privileged is not allowed (rule postgrest)"
	if err := createPrivileged(t); err == nil || !strings.Contains(err.Error(), privileged) {
		t.Errorf("the manager's create with Privileged: got %v, want %q", err, privileged)
	}
	if !strings.Contains(text, privileged) {
		t.Errorf("README.md does not quote %q", privileged)
	}
}

// createPrivileged sends the manager's create request for a project with Privileged set,
// through the proxy.
func createPrivileged(t *testing.T) error {
	api, err := client.NewClientWithOpts(client.WithHost("tcp://127.0.0.1:2375"),
		client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	id := dockertest.ProjectID()
	dockertest.RemoveContainerOnCleanup(t, dockertest.Client(t), "postgrest-"+id)
	pids := int64(512)
	_, err = api.ContainerCreate(context.Background(), &container.Config{
		Image: dockertest.PostgRESTImage,
		Cmd:   []string{"/etc/postgrest/projects/" + id + ".conf"},
		Labels: map[string]string{"io.launchdb.role": "postgrest",
			"io.launchdb.project": id},
		Healthcheck: &container.HealthConfig{
			Test:     []string{"CMD", "curl", "-f", "http://localhost:3000/"},
			Interval: 30 * time.Second, Timeout: 10 * time.Second, Retries: 3,
			StartPeriod: 30 * time.Second,
		},
	}, &container.HostConfig{
		NetworkMode:   "launchdb-internal",
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		Binds:         []string{"launchdb_postgrest-projects:/etc/postgrest/projects:ro"},
		SecurityOpt:   []string{"no-new-privileges"},
		Resources:     container.Resources{PidsLimit: &pids},
		Privileged:    true,
	}, nil, nil, "postgrest-"+id)
	return err
}

// send sends a request without a body and returns the status and the message of
// Docker's error shape (or the body, when it is not that shape).
func send(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var msg struct{ Message string }
	if json.Unmarshal(body, &msg) != nil {
		return resp.StatusCode, string(body)
	}
	return resp.StatusCode, msg.Message
}

func waitPort(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
