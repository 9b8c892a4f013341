package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
)

// spawnAndDestroy drives one project through the manager's API as platform-api and an
// operator would: spawn, list, restart, destroy.
func (d *demo) spawnAndDestroy(ctx context.Context) error {
	api := "/internal/postgrest"
	d.p.step("spawn a PostgREST container for %s through the manager", d.project)
	if err := d.show(ctx, 201, "POST", api+"/spawn",
		`{"projectId":"`+d.project+`"}`); err != nil {
		return err
	}
	name := "postgrest-" + d.project
	c, err := d.cli.ContainerInspect(ctx, name)
	if err != nil {
		return err
	}
	d.p.detail("container %s: %s, image %s, labels io.launchdb.role=%s "+
		"io.launchdb.project=%s, restart %s", name, c.State.Status, c.Config.Image,
		c.Config.Labels["io.launchdb.role"], c.Config.Labels["io.launchdb.project"],
		c.HostConfig.RestartPolicy.Name)
	d.p.detail("pgbouncer.ini: %s", d.pgbouncerLine())

	d.p.step("list the project containers")
	if err := d.show(ctx, 200, "GET", api, ""); err != nil {
		return err
	}
	d.p.step("restart it (a Docker restart: PostgREST has no SIGHUP handler)")
	if err := d.show(ctx, 200, "POST", api+"/"+d.project+"/restart", ""); err != nil {
		return err
	}
	d.p.step("destroy it")
	if err := d.show(ctx, 200, "DELETE", api+"/"+d.project, ""); err != nil {
		return err
	}
	if _, err := d.cli.ContainerInspect(ctx, name); !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("container %s still exists after destroy (%v)", name, err)
	}
	if line := d.pgbouncerLine(); line != "(no line)" {
		return fmt.Errorf("pgbouncer.ini still has %q after destroy", line)
	}
	d.p.detail("container %s removed, its pgbouncer.ini line and config file deleted", name)
	return nil
}

// pgbouncerLine returns the project's line in the PgBouncer stand-in's pgbouncer.ini.
func (d *demo) pgbouncerLine() string {
	f, err := os.Open(filepath.Join(d.dir, "pgbouncer.ini"))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), d.project+" ") {
			return sc.Text()
		}
	}
	return "(no line)"
}

// privileged runs `docker run --privileged` with the docker CLI against the proxy and
// requires the proxy's refusal.
func (d *demo) privileged(ctx context.Context) error {
	args := []string{"run", "-d", "--privileged", postgrestImage}
	d.p.step("docker run --privileged through the proxy")
	d.p.detail("$ DOCKER_HOST=tcp://%s docker %s", d.proxyAPI, strings.Join(args, " "))
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=tcp://"+d.proxyAPI)
	out, err := cmd.CombinedOutput()
	d.p.detail("%s", out)
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("docker run through the proxy was not refused (%v)", err)
	}
	if !strings.Contains(string(out), "sockpin:") {
		return fmt.Errorf("docker run failed without the proxy's refusal (%v)", err)
	}
	d.p.detail("(exit status %d: the proxy refused it; nothing reached the daemon)",
		exit.ExitCode())
	return nil
}

// observe shows the proxy's refusal in its audit log and its counters.
func (d *demo) observe(ctx context.Context) error {
	d.p.step("audit log: `docker logs %s` (one JSON line per request); the refusal:",
		d.proxyContainer)
	denial, err := d.denial(ctx)
	if err != nil {
		return err
	}
	d.p.detail("%s", denial)

	metrics, err := get(ctx, "http://"+d.proxyMetrics+"/metrics")
	if err != nil {
		return err
	}
	d.p.step("metrics: http://%s/metrics (proxy), %s/metrics (manager); denials:",
		d.proxyMetrics, d.managerURL)
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "sockpin_requests_total{") &&
			strings.Contains(line, `decision="deny"`) {
			d.p.detail("%s", line)
		}
	}
	d.p.detail("(both go away with the demo; the next step removes everything)")
	return nil
}

// denial returns the proxy's last audit line of a refusal. The line may reach the log a
// moment after the refused client got its answer: it waits up to five seconds.
func (d *demo) denial(ctx context.Context) (string, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		logs, err := containerLogs(ctx, d.cli, d.proxyContainer)
		if err != nil {
			return "", err
		}
		var denial string
		for _, line := range strings.Split(logs, "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["decision"] == "deny" {
				denial = line
			}
		}
		if denial != "" {
			return denial, nil
		}
		if time.Now().After(deadline) {
			return "", errors.New("the proxy's log has no refusal")
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), err
}

// cleanup removes every Docker object of the run, stops the database and deletes the
// working directory. It runs on a fresh context: the demo's may be cancelled.
func (d *demo) cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	summary, err := sweep(ctx, d.cli, d.runID, d.project)
	if d.db != nil && d.db.stop != nil {
		d.db.stop()
	}
	if d.dir != "" {
		if rerr := os.RemoveAll(d.dir); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return err
	}
	d.p.detail("removed %s; stopped PostgreSQL; deleted %s", summary, d.dir)
	return nil
}
