package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"

	"github.com/launchdb/sockpin/filter"
	"github.com/launchdb/sockpin/internal/dockertest"
)

const canary = "sockpin-canary-7f3a9c"

// corpus holds the daemon fixtures the red-team cases assume and restores
// them before each case.
type corpus struct {
	t     *testing.T
	cli   *client.Client
	specs []dockertest.Spec
	start time.Time
}

func newCorpus(t *testing.T, cli *client.Client) *corpus {
	c := &corpus{t: t, cli: cli, start: time.Now()}
	dockertest.StandinImage(t, cli, dockertest.PostgRESTImage)
	dockertest.StandinImage(t, cli, "alpine:latest")
	dockertest.Network(t, cli, "launchdb-internal")
	dockertest.Network(t, cli, "platform-private")
	dockertest.Volume(t, cli, "launchdb_postgrest-projects")
	sleep := []string{"/app", "sleep"}
	managed := func(id string) dockertest.Spec {
		return dockertest.Spec{Name: "postgrest-" + id, Image: dockertest.PostgRESTImage,
			Entrypoint: sleep, Network: "launchdb-internal", Labels: map[string]string{
				"io.launchdb.role": "postgrest", "io.launchdb.project": id}}
	}
	c.specs = []dockertest.Spec{
		managed("proj_0123456789abcdef"),
		managed("proj_1111111111111111"),
		{Name: "platform-postgres", Image: "alpine:latest", Entrypoint: sleep,
			Env: []string{"POSTGRES_PASSWORD=" + canary}},
		{Name: "launchdb-socket-proxy", Image: "alpine:latest", Entrypoint: sleep,
			Env:   []string{"POSTGRES_PASSWORD=" + canary},
			Binds: []string{"/var/run/docker.sock:/var/run/docker.sock"}},
	}
	dockertest.StartPgBouncer(t, cli, "launchdb-internal")
	t.Cleanup(c.sweep)
	return c
}

// restore brings every fixture back to running with its labels: a case may
// have stopped, removed or replaced one.
func (c *corpus) restore() {
	ctx := context.Background()
	for _, spec := range c.specs {
		info, err := c.cli.ContainerInspect(ctx, spec.Name)
		switch {
		case errdefs.IsNotFound(err):
			dockertest.Container(c.t, c.cli, spec)
			continue
		case err != nil:
			c.t.Fatalf("inspecting fixture %s: %v", spec.Name, err)
		case info.Config.Labels[dockertest.FixtureLabel] == "":
			// Made by a case through the proxy under a fixture's name.
			_ = c.cli.ContainerRemove(ctx, spec.Name, container.RemoveOptions{Force: true})
			dockertest.Container(c.t, c.cli, spec)
			continue
		case info.State.Paused:
			_ = c.cli.ContainerUnpause(ctx, spec.Name)
		case !info.State.Running:
			if err := c.cli.ContainerStart(ctx, spec.Name, container.StartOptions{}); err != nil {
				c.t.Fatalf("restarting fixture %s: %v", spec.Name, err)
			}
		}
	}
}

// sweep removes containers that cases created through the proxy.
func (c *corpus) sweep() {
	ctx := context.Background()
	list, err := c.cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "io.launchdb.role"))})
	if err != nil {
		return
	}
	for _, ct := range list {
		if ct.Labels[dockertest.FixtureLabel] == "" && time.Unix(ct.Created, 0).After(c.start.Add(-time.Second)) {
			_ = c.cli.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true})
		}
	}
}

var placeholder = regexp.MustCompile(`\{\{(id|id12|exec|imgid|imgid12|digest):([^}]+)\}\}`)

// expand replaces the corpus placeholders with live IDs; execs are created
// directly on the daemon.
func (c *corpus) expand(s string) string {
	ctx := context.Background()
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		p := placeholder.FindStringSubmatch(m)
		switch kind, name := p[1], p[2]; kind {
		case "id", "id12":
			info, err := c.cli.ContainerInspect(ctx, name)
			if err != nil {
				c.t.Fatalf("placeholder %s: %v", m, err)
			}
			if kind == "id12" {
				return info.ID[:12]
			}
			return info.ID
		case "exec":
			ex, err := c.cli.ContainerExecCreate(ctx, name, container.ExecOptions{
				AttachStdout: true, Cmd: []string{"/app", "version"}})
			if err != nil {
				ex, err = c.cli.ContainerExecCreate(ctx, name, container.ExecOptions{
					AttachStdout: true, Cmd: []string{"true"}})
			}
			if err != nil {
				c.t.Fatalf("placeholder %s: %v", m, err)
			}
			return ex.ID
		default:
			img, err := c.cli.ImageInspect(ctx, name)
			if err != nil {
				c.t.Fatalf("placeholder %s: %v", m, err)
			}
			if kind == "imgid12" {
				return strings.TrimPrefix(img.ID, "sha256:")[:12]
			}
			return img.ID
		}
	})
}

func (c *corpus) expandCase(k filter.Case) filter.Case {
	k.Path, k.Body, k.Raw = c.expand(k.Path), c.expand(k.Body), c.expand(k.Raw)
	h := map[string]string{}
	for key, v := range k.Headers {
		h[key] = c.expand(v)
	}
	if k.Raw == "" && h["Connection"] == "" {
		// End the exchange after one answer instead of waiting on keep-alive.
		h["Connection"] = "close"
	}
	k.Headers = h
	return k
}

// exchange writes raw bytes to the proxy and returns every byte it sends
// back until it closes the connection or falls silent.
func exchange(t *testing.T, addr string, raw []byte) []byte {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dialing the proxy: %v", err)
	}
	defer conn.Close()
	go func() { _, _ = conn.Write(raw) }()
	var out bytes.Buffer
	deadline := time.Now().Add(8 * time.Second)
	buf := make([]byte, 64<<10)
	for time.Now().Before(deadline) {
		_ = conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
		n, err := conn.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return out.Bytes()
}

// statuses parses the HTTP answers in what the proxy sent back.
func statuses(answer []byte) []int {
	var out []int
	br := bufio.NewReader(bytes.NewReader(answer))
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		out = append(out, resp.StatusCode)
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return out
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

var readEndpoint = regexp.MustCompile(`^(/v[0-9.]+)?/(_ping|version|containers/json|containers/[^/]+/json|` +
	`exec/[^/]+/json|images/.+/json|networks|networks/[^/]+|volumes/[^/]+)(\?.*)?$`)

func isRead(r dockertest.RecordedRequest) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && readEndpoint.MatchString(r.Target)
}

// opOf classifies a request the relay recorded.
func opOf(p *filter.Policy, method, target string) filter.Op {
	call, d := p.Classify(method, target)
	if d != nil {
		return d.Op
	}
	return call.Op
}

// TestRedTeamCorpus replays every case of the red-team corpus against the
// real proxy in front of the real daemon, with a recording relay between
// them: every deny case is refused without anything but reads reaching the
// daemon, every allow case reaches the daemon with its meaning intact.
func TestRedTeamCorpus(t *testing.T) {
	cli := dockertest.Client(t)
	var cases []filter.Case
	for _, f := range []string{"../testdata/redteam/cases.jsonl", "../testdata/redteam/sockpin-cases.jsonl"} {
		more, err := filter.ReadCases(f)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, more...)
	}
	pol, err := filter.Load("../policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := newCorpus(t, cli)
	relay := dockertest.StartRelay(t, "")
	px := dockertest.StartProxy(t, dockertest.ProxyOptions{Upstream: relay.Path()})
	addr := strings.TrimPrefix(px.DockerHost, "tcp://")
	legit := map[string]bool{}
	for _, k := range cases {
		if k.Expect == "allow" && !strings.Contains(k.Path, "{{") {
			legit[k.Method+" "+k.Path] = true
		}
	}
	failed := map[string]int{}
	for _, k := range cases {
		c.restore()
		k = c.expandCase(k)
		relay.Reset()
		answer := exchange(t, addr, k.Bytes())
		if reason := judge(pol, k, legit, relay.Requests(), answer); reason != "" {
			failed[k.Class]++
			t.Errorf("%s (%s, expect %s): %s", k.ID, k.Class, k.Expect, reason)
		}
	}
	t.Logf("%d cases replayed; failing classes: %v", len(cases), failed)
}

// judge returns why a case failed, or "".
func judge(p *filter.Policy, k filter.Case, legit map[string]bool, seen []dockertest.RecordedRequest, answer []byte) string {
	if bytes.Contains(answer, []byte(canary)) {
		return "the answer leaks a secret environment value"
	}
	st := statuses(answer)
	if k.Expect == "allow" {
		want := opOf(p, k.Method, k.Path)
		for _, r := range seen {
			if r.Method == k.Method && opOf(p, r.Method, r.Target) == want {
				if len(st) == 0 {
					return "no answer"
				}
				return ""
			}
		}
		return "the request did not reach the daemon; the proxy answered " + string(firstLine(answer))
	}
	exempt := k.Raw != "" && legit[k.Method+" "+k.Path]
	for _, r := range seen {
		if isRead(r) {
			continue
		}
		if exempt && r.Method == k.Method && opOf(p, r.Method, r.Target) == opOf(p, k.Method, k.Path) {
			exempt = false // the legitimate first request, once
			continue
		}
		return "reached the daemon: " + r.String()
	}
	if k.Raw == "" && (k.Method == http.MethodGet || k.Method == http.MethodHead) &&
		len(st) > 0 && st[0] >= 200 && st[0] < 300 {
		return "a refused read was answered " + string(firstLine(answer))
	}
	return ""
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return bytes.TrimSpace(b[:i])
	}
	return b
}
