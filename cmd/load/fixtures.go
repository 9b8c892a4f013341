package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"go.yaml.in/yaml/v3"

	"github.com/launchdb/sockpin/internal/daemonlock"
)

const (
	runLabel   = "sockpin.load.run"
	benchLabel = "sockpin.load.bench"
	pinned     = "launchdb/postgrest:v1"
	tenantNet  = "launchdb-internal"
	configVol  = "launchdb_postgrest-projects"
	benchName  = "sockpin-load-bench"
	logsName   = "sockpin-load-logs"
)

// bench is a prepared run: fixtures on the daemon, a proxy, a relay.
type bench struct {
	cfg     *config
	log     io.Writer
	cli     *client.Client
	run     string
	dir     string
	managed []string
	proxy   *exec.Cmd
	sides   []side
	relay   *exec.Cmd
	cycles  int
	// idleRSS is the proxy's resident memory once started, before any load.
	idleRSS int64
	unlock  func()
}

func setup(ctx context.Context, cfg *config, log io.Writer) (*bench, error) {
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+cfg.docker),
		client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		return nil, fmt.Errorf("the Docker daemon on %s does not answer: %w", cfg.docker, err)
	}
	// The fixtures have fixed names that tests and the demo use too.
	unlock, err := daemonlock.Acquire(func() {
		fmt.Fprintf(log, "load: waiting for another sockpin process to finish with the daemon (%s)\n",
			daemonlock.Path())
	})
	if err != nil {
		return nil, err
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	dir, err := os.MkdirTemp("", "sockpin-load-")
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, log: log, cli: cli, run: hex.EncodeToString(suffix), dir: dir, unlock: unlock}
	if err := b.fixtures(ctx); err != nil {
		b.teardown()
		return nil, err
	}
	if err := b.startSides(ctx); err != nil {
		b.teardown()
		return nil, err
	}
	return b, nil
}

func (b *bench) labels(extra ...string) map[string]string {
	l := map[string]string{runLabel: b.run}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

func (b *bench) say(format string, args ...any) {
	fmt.Fprintf(b.log, "load: "+format+"\n", args...)
}

func (b *bench) fixtures(ctx context.Context) error {
	if err := b.refuseForeign(ctx); err != nil {
		return err
	}
	b.say("building the stand-in image %s", pinned)
	if err := b.buildImage(ctx); err != nil {
		return err
	}
	if _, err := b.cli.NetworkCreate(ctx, tenantNet, network.CreateOptions{Labels: b.labels()}); err != nil {
		return fmt.Errorf("creating network: %w", err)
	}
	if _, err := b.cli.VolumeCreate(ctx, volume.CreateOptions{Name: configVol, Labels: b.labels()}); err != nil {
		return fmt.Errorf("creating volume: %w", err)
	}
	b.say("starting %d managed containers and the stream fixtures", b.cfg.containers)
	for i := 0; i < b.cfg.containers; i++ {
		id := fmt.Sprintf("proj_%s%08d", b.run, i)
		name := "postgrest-" + id
		if err := b.startContainer(ctx, name, []string{"/app", "sleep"},
			b.labels("io.launchdb.role", "postgrest", "io.launchdb.project", id)); err != nil {
			return err
		}
		b.managed = append(b.managed, name)
	}
	if err := b.startContainer(ctx, benchName, []string{"/app", "sleep"}, b.labels(benchLabel, "1")); err != nil {
		return err
	}
	b.say("writing %d MiB of container log", b.cfg.logBytes>>20)
	emit := []string{"/app", "emit", fmt.Sprint(b.cfg.logBytes)}
	if err := b.startContainer(ctx, logsName, emit, b.labels(benchLabel, "1")); err != nil {
		return err
	}
	waitC, errC := b.cli.ContainerWait(ctx, logsName, container.WaitConditionNotRunning)
	select {
	case <-waitC:
		return nil
	case err := <-errC:
		return fmt.Errorf("waiting for the log writer: %w", err)
	}
}

// refuseForeign stops when a fixed name already belongs to someone else.
func (b *bench) refuseForeign(ctx context.Context) error {
	if _, err := b.cli.ImageInspect(ctx, pinned); err == nil {
		return fmt.Errorf("image %s already exists; the load tool will not replace it", pinned)
	}
	if _, err := b.cli.NetworkInspect(ctx, tenantNet, network.InspectOptions{}); err == nil {
		return fmt.Errorf("network %s already exists; the load tool will not touch it", tenantNet)
	}
	if _, err := b.cli.VolumeInspect(ctx, configVol); err == nil {
		return fmt.Errorf("volume %s already exists; the load tool will not touch it", configVol)
	}
	return nil
}

func (b *bench) buildImage(ctx context.Context) error {
	bin, err := os.ReadFile(b.cfg.standin)
	if err != nil {
		return fmt.Errorf("reading the stand-in (build it with make bin/standin): %w", err)
	}
	dockerfile := fmt.Sprintf("FROM scratch\nCOPY standin /app\nCOPY standin /usr/bin/curl\n"+
		"LABEL %s=%s\nENTRYPOINT [\"/app\", \"serve\"]\n", runLabel, b.run)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
		mode int64
	}{{"Dockerfile", []byte(dockerfile), 0o644}, {"standin", bin, 0o755}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := b.cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{pinned},
		Remove: true, ForceRemove: true, Labels: b.labels()})
	if err != nil {
		return fmt.Errorf("building the stand-in image: %w", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(out), `"error"`) {
		return fmt.Errorf("building the stand-in image: %s", out)
	}
	return nil
}

func (b *bench) startContainer(ctx context.Context, name string, entrypoint []string, labels map[string]string) error {
	// The log is kept whole whatever the daemon's rotation default, so the
	// log scenario reads all of it.
	logs := container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "2g", "max-file": "1"}}
	_, err := b.cli.ContainerCreate(ctx, &container.Config{Image: pinned, Entrypoint: entrypoint,
		Labels: labels}, &container.HostConfig{NetworkMode: tenantNet, LogConfig: logs}, nil, nil, name)
	if err != nil {
		return fmt.Errorf("creating %s: %w", name, err)
	}
	if err := b.cli.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	return nil
}

// teardown removes everything the run created, whatever state it is in.
func (b *bench) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if b.proxy != nil && b.proxy.Process != nil {
		_ = b.proxy.Process.Signal(os.Interrupt)
		_ = b.proxy.Wait()
	}
	if b.relay != nil && b.relay.Process != nil {
		_ = b.relay.Process.Kill()
		_ = b.relay.Wait()
	}
	f := filters.NewArgs(filters.Arg("label", runLabel+"="+b.run))
	if list, err := b.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f}); err == nil {
		for _, c := range list {
			_ = b.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		}
	}
	// Only what carries this run's label: a fixed name may be someone
	// else's when setup stopped early.
	if n, err := b.cli.NetworkInspect(ctx, tenantNet, network.InspectOptions{}); err == nil &&
		n.Labels[runLabel] == b.run {
		_ = b.cli.NetworkRemove(ctx, n.ID)
	}
	if v, err := b.cli.VolumeInspect(ctx, configVol); err == nil && v.Labels[runLabel] == b.run {
		_ = b.cli.VolumeRemove(ctx, configVol, true)
	}
	if imgs, err := b.cli.ImageList(ctx, image.ListOptions{Filters: f}); err == nil {
		for _, im := range imgs {
			_, _ = b.cli.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true})
		}
	}
	os.RemoveAll(b.dir)
	b.cli.Close()
	b.unlock()
}

// benchPolicy is the policy under test plus a group for the stream
// fixtures: their logs may be read and /app emit N may run in them.
func (b *bench) benchPolicy() (string, error) {
	data, err := os.ReadFile(b.cfg.policy)
	if err != nil {
		return "", err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", err
	}
	var group yaml.Node
	if err := yaml.Unmarshal([]byte(fmt.Sprintf(`
labels: {%s: "1"}
allow: [inspect, logs, exec]
exec:
  - rule: emit
    user: ""
    argv: [/app, emit, {pattern: '^[0-9]+$'}]
`, benchLabel)), &group); err != nil {
		return "", err
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "groups" {
			groups := root.Content[i+1]
			groups.Content = append(groups.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Value: "load-bench"}, group.Content[0])
		}
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return "", err
	}
	path := filepath.Join(b.dir, "policy.yaml")
	return path, os.WriteFile(path, out, 0o600)
}
