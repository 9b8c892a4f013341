package proxy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/launchdb/sockpin/internal/dockertest"
)

// The reliability tests inject faults for real, on loopback, against the
// proxy binary in front of the real daemon: the daemon going away, hostile
// clients, clients leaving streams, load and shutdown. Short variants run in
// make test; make soak sets SOCKPIN_SOAK=1 for the long ones.

// streamLabel marks the containers of the test policy's extra group, whose
// logs may be followed and in which /app emit N and /app sleep may run.
const streamLabel = "sockpin.test.stream"

// streamGroup is added to policy.yaml for the tests that need streams the
// default policy does not allow (followed logs, execs with output).
const streamGroup = `  reliability:
    about: Containers the reliability tests read streams from.
    labels:
      sockpin.test.stream: "1"
    allow: [inspect, logs, wait, exec]
    exec:
      - rule: emit
        user: ""
        argv: [/app, emit, {pattern: '^[0-9]+$'}]
      - rule: sleep
        user: ""
        argv: [/app, sleep]
`

// streamPolicy writes policy.yaml with streamGroup added and returns its
// path.
func streamPolicy(t *testing.T) string {
	t.Helper()
	orig, err := os.ReadFile("../policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(orig), "\ngroups:\n", "\ngroups:\n"+streamGroup, 1)
	if s == string(orig) {
		t.Fatal("policy.yaml has no groups section to extend")
	}
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// standinImage builds the stand-in image under a tag of this run.
func standinImage(t *testing.T, cli *client.Client) string {
	t.Helper()
	tag := "sockpin-reliability:" + dockertest.RunID()
	dockertest.StandinImage(t, cli, tag)
	return tag
}

// streamContainer starts a container of the test policy's stream group
// running the stand-in with args (sleep, emit N).
func streamContainer(t *testing.T, cli *client.Client, image, name string, args ...string) string {
	t.Helper()
	return dockertest.Container(t, cli, dockertest.Spec{Name: name, Image: image,
		Entrypoint: append([]string{"/app"}, args...),
		Labels:     map[string]string{streamLabel: "1"}})
}

// managedContainer starts a container the default policy's postgrest group
// covers, running the stand-in's sleep.
func managedContainer(t *testing.T, cli *client.Client, image string) (name, id string) {
	t.Helper()
	project := dockertest.ProjectID()
	name = "postgrest-" + project
	id = dockertest.Container(t, cli, dockertest.Spec{Name: name, Image: image,
		Entrypoint: []string{"/app", "sleep"}, Labels: map[string]string{
			"io.launchdb.role": "postgrest", "io.launchdb.project": project}})
	return name, id
}

// hostPort returns the proxy's listen address as host:port.
func hostPort(px *dockertest.Proxy) string {
	return strings.TrimPrefix(px.DockerHost, "tcp://")
}

func baseURL(px *dockertest.Proxy) string { return "http://" + hostPort(px) }

// metricsURL returns another path on the proxy's metrics listener.
func metricsURL(px *dockertest.Proxy, path string) string {
	return strings.TrimSuffix(px.MetricsURL, "/metrics") + path
}

// answer is a response read whole.
type answer struct {
	status int
	header http.Header
	body   string
	err    error
	took   time.Duration
}

// call sends one request with c and reads the whole answer.
func call(c *http.Client, method, url, contentType, body string) answer {
	start := time.Now()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	if body != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(data), err: err,
		took: time.Since(start)}
}

func (a answer) String() string {
	if a.err != nil {
		return fmt.Sprintf("error %v after %v", a.err, a.took.Round(time.Millisecond))
	}
	return fmt.Sprintf("%d %q after %v", a.status, clip(a.body), a.took.Round(time.Millisecond))
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// dockerMessage returns the message of Docker's error shape, or "" when
// body is not in that shape.
func dockerMessage(body string) string {
	var e struct {
		Message *string `json:"message"`
	}
	if json.Unmarshal([]byte(body), &e) != nil || e.Message == nil {
		return ""
	}
	return *e.Message
}

// quickClient is a client with a short overall timeout, for requests that
// must be answered promptly.
func quickClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
}

// wantPrompt checks that a legitimate request is answered 200 within limit
// while something else is going on.
func wantPrompt(t *testing.T, px *dockertest.Proxy, limit time.Duration) {
	t.Helper()
	a := call(quickClient(limit), "GET", baseURL(px)+"/_ping", "", "")
	if a.err != nil || a.status != http.StatusOK {
		t.Errorf("legitimate GET /_ping meanwhile: got %v, want 200 within %v", a, limit)
	}
}

// procFDs counts the open file descriptors of process pid.
func procFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("reading the proxy's descriptors: %v", err)
	}
	return len(ents)
}

// procStatus reads one kB field of /proc/<pid>/status (VmRSS, VmHWM).
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the proxy's status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(
				strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", field, v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// scrape returns every sample of the proxy's metrics page, keyed by the
// sample name with its labels as written.
func scrape(t *testing.T, c *http.Client, px *dockertest.Proxy) map[string]float64 {
	t.Helper()
	resp, err := c.Get(px.MetricsURL)
	if err != nil {
		t.Fatalf("reading metrics: %v", err)
	}
	defer resp.Body.Close()
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// rawConn dials the proxy for a test that writes HTTP by hand.
func rawConn(t *testing.T, px *dockertest.Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", hostPort(px), 5*time.Second)
	if err != nil {
		t.Fatalf("dialing the proxy: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readHead reads a response head from br with a deadline on c.
func readHead(c net.Conn, br *bufio.Reader, timeout time.Duration) (*http.Response, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	return http.ReadResponse(br, nil)
}

// waitClosed waits until the peer closes c (a read returns EOF or an
// error other than a timeout) and returns how long that took and what
// arrived before.
func waitClosed(c net.Conn, limit time.Duration) (time.Duration, []byte, error) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	var got bytes.Buffer
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return time.Since(start), got.Bytes(), fmt.Errorf("still open after %v", limit)
			}
			return time.Since(start), got.Bytes(), nil
		}
	}
}

// auditByTag returns the audit lines whose path carries Req=tag.
func auditByTag(lines []map[string]any, tag string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if p, _ := l["path"].(string); strings.Contains(p, "Req="+tag) {
			out = append(out, l)
		}
	}
	return out
}
