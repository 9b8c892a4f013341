package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/launchdb/sockpin/internal/dockertest"
)

// metric reads one sample from the proxy's metrics page.
func metric(t *testing.T, url, sample string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return v
		}
	}
	return ""
}

func waitMetric(t *testing.T, url, sample, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for metric(t, url, sample) != want {
		if time.Now().After(deadline) {
			t.Fatalf("metric %s: got %q, want %q", sample, metric(t, url, sample), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReloadUnderLoad swaps the policy while clients keep sending
// requests: no request either policy allows fails, the new policy takes
// effect, and a broken policy file leaves the loaded one in force.
func TestReloadUnderLoad(t *testing.T) {
	dockertest.Client(t)
	orig, err := os.ReadFile("../policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	px := dockertest.StartProxy(t, dockertest.ProxyOptions{Policy: file})
	base := "http://" + strings.TrimPrefix(px.DockerHost, "tcp://")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

	var (
		swapped  atomic.Bool // set once the new policy is known to be in force
		sent     atomic.Int64
		failures = make(chan string, 100)
		wg       sync.WaitGroup
	)
	ctx, stop := context.WithCancel(context.Background())
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				for _, path := range []string{"/_ping", "/containers/json", "/version"} {
					after := swapped.Load()
					resp, err := client.Get(base + path)
					sent.Add(1)
					if err != nil {
						failures <- fmt.Sprintf("%s: %v", path, err)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ok := resp.StatusCode == http.StatusOK
					if path == "/version" {
						// Allowed by the old policy, refused by the new one.
						ok = resp.StatusCode == http.StatusOK && !after || resp.StatusCode == http.StatusForbidden
					}
					if !ok {
						failures <- fmt.Sprintf("%s: status %d (new policy in force: %v)", path, resp.StatusCode, after)
					}
				}
			}
		}()
	}
	for _, result := range []string{"ok", "failed"} {
		name := `sockpin_policy_reloads_total{result="` + result + `"}`
		if got := metric(t, px.MetricsURL, name); got != "0" {
			t.Errorf("%s before any reload: got %q, want 0", name, got)
		}
	}
	time.Sleep(700 * time.Millisecond)
	tighter := strings.Replace(string(orig), "system: [ping, version]", "system: [ping]", 1)
	if err := os.WriteFile(file, []byte(tighter), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := px.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, px.MetricsURL, "sockpin_policy_generation", "2")
	swapped.Store(true)
	time.Sleep(700 * time.Millisecond)
	if err := os.WriteFile(file, []byte("schema: 1\nsystem: [ping\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := px.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, px.MetricsURL, `sockpin_policy_reloads_total{result="failed"}`, "1")
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("request failed: %s", f)
	}
	if got := metric(t, px.MetricsURL, "sockpin_policy_generation"); got != "2" {
		t.Errorf("after the broken reload: got generation %s, want 2 (the old policy kept)", got)
	}
	resp, err := client.Get(base + "/version")
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("after the broken reload: got %v %v, want /version still refused", resp.StatusCode, err)
	}
	t.Logf("%d requests during two reloads, none failed", sent.Load())
}

// TestReloadOnFileChange reloads a changed policy file without a signal
// when -policy-poll is set.
func TestReloadOnFileChange(t *testing.T) {
	dockertest.Client(t)
	orig, err := os.ReadFile("../policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(file, orig, 0o600)
	px := dockertest.StartProxy(t, dockertest.ProxyOptions{Policy: file, Args: []string{"-policy-poll", "50ms"}})
	tighter := strings.Replace(string(orig), "system: [ping, version]", "system: [ping]", 1)
	os.WriteFile(file, []byte(tighter), 0o600)
	waitMetric(t, px.MetricsURL, "sockpin_policy_generation", "2")
	resp, err := http.Get("http://" + strings.TrimPrefix(px.DockerHost, "tcp://") + "/version")
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("got %v %v, want /version refused by the reloaded policy", resp, err)
	}
}
