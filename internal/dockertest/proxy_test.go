package dockertest

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
)

// fakeProxy builds testdata/fakeproxy, which honours the proxy's flags and
// forwards everything, so StartProxy can be tested on its own.
func fakeProxy(t *testing.T) string {
	t.Helper()
	return BuildBinary(t, "./internal/dockertest/testdata/fakeproxy")
}

func emptyPolicy(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte("# fakeproxy reads nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStartProxyRunsTheFlagContract(t *testing.T) {
	Client(t)
	relay := StartRelay(t, "")
	p := StartProxy(t, ProxyOptions{Binary: fakeProxy(t), Policy: emptyPolicy(t),
		Upstream: relay.Path()})

	if !regexp.MustCompile(`^tcp://127\.0\.0\.1:[0-9]+$`).MatchString(p.DockerHost) {
		t.Errorf("DockerHost: got %q, want tcp://127.0.0.1:<port>", p.DockerHost)
	}
	cli := p.Client(t)
	if _, err := cli.ContainerList(context.Background(), container.ListOptions{}); err != nil {
		t.Fatalf("container list through the proxy: %v", err)
	}
	if got := Targets(relay.Requests()); !slices.ContainsFunc(got, func(s string) bool {
		return strings.Contains(s, "/containers/json")
	}) {
		t.Errorf("relay saw: got %q, want a container list", got)
	}
	audit := p.WaitAuditLines(t, 2)
	if got := audit[len(audit)-1]["path"]; !strings.HasSuffix(got.(string), "/containers/json") {
		t.Errorf("last audit line path: got %v, want .../containers/json", got)
	}
	if got := len(p.LogLines()); got <= len(audit) {
		t.Errorf("log lines: got %d, want more than the %d audit lines", got, len(audit))
	}

	resp, err := http.Get(p.MetricsURL)
	if err != nil {
		t.Fatalf("GET %s: %v", p.MetricsURL, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "fakeproxy_requests_total") {
		t.Errorf("metrics: got %q, want the request counter", body)
	}

	if err := p.Stop(); err != nil {
		t.Errorf("Stop: got %v, want a clean exit", err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: got %v, want the first result (nil)", err)
	}
}

func TestStartProxyFailures(t *testing.T) {
	bin := fakeProxy(t)
	tests := []struct {
		name      string
		opts      ProxyOptions
		during    func(p *Proxy)
		wantFatal string
		wantError string
	}{
		{
			name: "exits-before-listening",
			opts: ProxyOptions{Binary: bin,
				Policy: filepath.Join(t.TempDir(), "missing.yaml")},
			wantFatal: "exited before listening",
		},
		{
			name: "dies-during-the-test",
			opts: ProxyOptions{Binary: bin, Policy: emptyPolicy(t)},
			during: func(p *Proxy) {
				p.Signal(syscall.SIGKILL)
				select {
				case <-p.done:
				case <-time.After(5 * time.Second):
				}
			},
			wantError: "had already exited",
		},
		{
			name:   "stops-cleanly",
			opts:   ProxyOptions{Binary: bin, Policy: emptyPolicy(t)},
			during: func(p *Proxy) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := record(t, func(tb testing.TB) {
				p := StartProxy(tb, tt.opts)
				tt.during(p)
			})
			if !strings.Contains(r.fatal, tt.wantFatal) || (tt.wantFatal == "") != (r.fatal == "") {
				t.Errorf("fatal: got %q, want %q", r.fatal, tt.wantFatal)
			}
			errs := strings.Join(r.errors, "\n")
			if !strings.Contains(errs, tt.wantError) || (tt.wantError == "") != (errs == "") {
				t.Errorf("errors: got %q, want %q", errs, tt.wantError)
			}
		})
	}
}

// TestStartProxyRealBinary runs cmd/proxy with the repository's policy.yaml
// through a relay: allowed requests reach the daemon, refused ones do not.
func TestStartProxyRealBinary(t *testing.T) {
	root := ModuleRoot(t)
	if m, _ := filepath.Glob(filepath.Join(root, "cmd", "proxy", "*.go")); len(m) == 0 {
		t.Skip("cmd/proxy has no source yet")
	}
	Client(t)
	relay := StartRelay(t, "")
	p := StartProxy(t, ProxyOptions{Upstream: relay.Path()})
	cli := p.Client(t)
	ctx := context.Background()

	if _, err := cli.ServerVersion(ctx); err != nil {
		t.Fatalf("GET /version through the proxy: %v", err)
	}
	relay.Reset()
	_, err := cli.ContainerCreate(ctx, &container.Config{Image: "busybox", Cmd: []string{"id"}},
		&container.HostConfig{Privileged: true}, nil, nil, "sockpin-refused-"+randomString(8))
	if !cerrdefs.IsPermissionDenied(err) {
		t.Errorf("privileged create: got %v, want a 403 refusal", err)
	}
	if got := relay.Requests(); len(got) != 0 {
		t.Errorf("requests reaching the daemon after a refusal: got %q, want none", Targets(got))
	}
}
