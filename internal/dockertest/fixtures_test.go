package dockertest

import (
	"context"
	"slices"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/launchdb/sockpin/internal/standin"
)

// These tests use random names, not the fixed LaunchDB ones, so they do not
// collide with other packages' tests running against the same daemon.

// ownerLabel marks the objects these tests create to play "someone else's"
// objects: they must not carry this run's label, yet stay traceable.
const ownerLabel = "sockpin.test.owner"

func testName(kind string) string {
	return "sockpin-test-" + kind + "-" + randomString(8)
}

// standinForTest builds the stand-in image under a tag unique to the run.
func standinForTest(t *testing.T, cli *client.Client) string {
	t.Helper()
	tag := "sockpin-test/standin:" + randomString(8)
	StandinImage(t, cli, tag)
	return tag
}

func TestFixturesLabelAndRemove(t *testing.T) {
	cli := Client(t)
	ctx := context.Background()
	name := testName("fixture")
	var tag, containerID string

	t.Run("create", func(t *testing.T) {
		tag = standinForTest(t, cli)
		Network(t, cli, name)
		Volume(t, cli, name)
		containerID = Container(t, cli, Spec{
			Name:       name,
			Image:      tag,
			Entrypoint: []string{"/app", "sleep"},
			Env:        []string{"A=1"},
			Labels:     map[string]string{"io.launchdb.role": "test"},
			Network:    name,
			Binds:      []string{name + ":/data"},
		})

		net, err := cli.NetworkInspect(ctx, name, network.InspectOptions{})
		if err != nil || net.Labels[RunLabel] != RunID() {
			t.Errorf("network labels: got %v (err %v), want %s=%s", net.Labels, err, RunLabel,
				RunID())
		}
		vol, err := cli.VolumeInspect(ctx, name)
		if err != nil || vol.Labels[RunLabel] != RunID() {
			t.Errorf("volume labels: got %v (err %v), want %s=%s", vol.Labels, err, RunLabel,
				RunID())
		}
		img, err := cli.ImageInspect(ctx, tag)
		if err != nil || img.Config.Labels[RunLabel] != RunID() {
			t.Errorf("image inspect: err %v, want label %s=%s", err, RunLabel, RunID())
		}
		c, err := cli.ContainerInspect(ctx, containerID)
		if err != nil {
			t.Fatalf("inspecting container: %v", err)
		}
		checks := []struct {
			what      string
			got, want any
		}{
			{"run label", c.Config.Labels[RunLabel], RunID()},
			{"fixture label", c.Config.Labels[FixtureLabel], RunID()},
			{"role label", c.Config.Labels["io.launchdb.role"], "test"},
			{"running", c.State.Running, true},
			{"env has A=1", slices.Contains(c.Config.Env, "A=1"), true},
			{"network", string(c.HostConfig.NetworkMode), name},
			{"binds", strings.Join(c.HostConfig.Binds, ","), name + ":/data"},
		}
		for _, ch := range checks {
			if ch.got != ch.want {
				t.Errorf("container %s: got %v, want %v", ch.what, ch.got, ch.want)
			}
		}
	})

	gone := []struct {
		name    string
		inspect func() error
	}{
		{"container", func() error {
			_, err := cli.ContainerInspect(ctx, containerID)
			return err
		}},
		{"network", func() error {
			_, err := cli.NetworkInspect(ctx, name, network.InspectOptions{})
			return err
		}},
		{"volume", func() error { _, err := cli.VolumeInspect(ctx, name); return err }},
		{"image", func() error { _, err := cli.ImageInspect(ctx, tag); return err }},
	}
	for _, g := range gone {
		t.Run(g.name+"-removed-on-cleanup", func(t *testing.T) {
			if err := g.inspect(); !cerrdefs.IsNotFound(err) {
				t.Errorf("inspect after cleanup: got %v, want not found", err)
			}
		})
	}
}

func TestFixturesReuseThisRunsNetworkAndVolume(t *testing.T) {
	cli := Client(t)
	name := testName("reuse")
	first := Network(t, cli, name)
	if again := Network(t, cli, name); again != first {
		t.Errorf("second Network: got ID %s, want the first one %s", again, first)
	}
	Volume(t, cli, name)
	Volume(t, cli, name)
}

// foreign creates, directly through the client, objects that do not carry
// this run's label, and removes them on cleanup.
type foreign struct {
	t   *testing.T
	cli *client.Client
}

func (f foreign) labels(runLabel string) map[string]string {
	l := map[string]string{ownerLabel: RunID()}
	if runLabel != "" {
		l[RunLabel] = runLabel
	}
	return l
}

func (f foreign) network(name, runLabel string) {
	f.t.Helper()
	ctx := context.Background()
	_, err := f.cli.NetworkCreate(ctx, name, network.CreateOptions{Labels: f.labels(runLabel)})
	if err != nil {
		f.t.Fatalf("creating foreign network: %v", err)
	}
	f.t.Cleanup(func() { f.cli.NetworkRemove(ctx, name) })
}

func (f foreign) volume(name, runLabel string) {
	f.t.Helper()
	ctx := context.Background()
	_, err := f.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: f.labels(runLabel)})
	if err != nil {
		f.t.Fatalf("creating foreign volume: %v", err)
	}
	f.t.Cleanup(func() { f.cli.VolumeRemove(ctx, name, true) })
}

func (f foreign) container(name, image, runLabel string) {
	f.t.Helper()
	ctx := context.Background()
	_, err := f.cli.ContainerCreate(ctx,
		&container.Config{Image: image, Cmd: []string{"/f"}, Labels: f.labels(runLabel)},
		nil, nil, nil, name)
	if err != nil {
		f.t.Fatalf("creating foreign container: %v", err)
	}
	f.t.Cleanup(func() {
		f.cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true})
	})
}

func (f foreign) image(tag, runLabel string) {
	f.t.Helper()
	ctx := context.Background()
	root := standin.Tree{}
	root.File("f", []byte("x"), 0o644)
	var changes []string
	for k, v := range f.labels(runLabel) {
		changes = append(changes, "LABEL "+k+"="+v)
	}
	layer, err := root.Tar()
	if err != nil {
		f.t.Fatal(err)
	}
	body, err := f.cli.ImageImport(ctx, image.ImportSource{Source: layer, SourceName: "-"},
		tag, image.ImportOptions{Changes: changes})
	if err != nil {
		f.t.Fatalf("importing foreign image: %v", err)
	}
	err = standin.ReadProgress(body)
	body.Close()
	f.t.Cleanup(func() {
		f.cli.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	if err != nil {
		f.t.Fatalf("importing foreign image: %v", err)
	}
}

func TestFixturesRefuseObjectsNotOurs(t *testing.T) {
	cli := Client(t)
	tag := standinForTest(t, cli)
	const otherRun = "otherrun0000"
	createContainer := func(tb testing.TB, name string) {
		Container(tb, cli, Spec{Name: name, Image: tag})
	}

	tests := []struct {
		name      string
		setup     func(f foreign, name string)
		create    func(tb testing.TB, name string)
		wantFatal string
	}{
		{
			name:      "network-without-run-label",
			setup:     func(f foreign, name string) { f.network(name, "") },
			create:    func(tb testing.TB, name string) { Network(tb, cli, name) },
			wantFatal: "has no " + RunLabel + " label",
		},
		{
			name:      "network-of-another-run",
			setup:     func(f foreign, name string) { f.network(name, otherRun) },
			create:    func(tb testing.TB, name string) { Network(tb, cli, name) },
			wantFatal: RunLabel + "=" + otherRun,
		},
		{
			name:      "volume-without-run-label",
			setup:     func(f foreign, name string) { f.volume(name, "") },
			create:    func(tb testing.TB, name string) { Volume(tb, cli, name) },
			wantFatal: "has no " + RunLabel + " label",
		},
		{
			name:   "bind-volume-of-another-run",
			setup:  func(f foreign, name string) { f.volume(name, otherRun) },
			create: func(tb testing.TB, name string) { BindVolume(tb, cli, name, t.TempDir()) },

			wantFatal: RunLabel + "=" + otherRun,
		},
		{
			name: "container-without-run-label",
			setup: func(f foreign, name string) {
				// Containers inherit image labels: use an image without ours.
				f.image("sockpin-test/"+name+":v1", "")
				f.container(name, "sockpin-test/"+name+":v1", "")
			},
			create:    createContainer,
			wantFatal: "has no " + RunLabel + " label",
		},
		{
			name:      "container-of-this-run",
			setup:     func(f foreign, name string) { f.container(name, tag, RunID()) },
			create:    createContainer,
			wantFatal: "created earlier by this test run",
		},
		{
			name:  "image-without-run-label",
			setup: func(f foreign, name string) { f.image("sockpin-test/"+name+":v1", "") },
			create: func(tb testing.TB, name string) {
				StandinImage(tb, cli, "sockpin-test/"+name+":v1")
			},
			wantFatal: "has no " + RunLabel + " label",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := testName("foreign")
			tt.setup(foreign{t: t, cli: cli}, name)

			r := record(t, func(tb testing.TB) { tt.create(tb, name) })
			if !strings.Contains(r.fatal, "already exists") ||
				!strings.Contains(r.fatal, tt.wantFatal) {
				t.Errorf("fatal: got %q, want \"already exists\" and %q", r.fatal, tt.wantFatal)
			}
			if len(r.errors) != 0 {
				t.Errorf("errors: got %q, want none", r.errors)
			}
		})
	}
}

func TestFixturesLeaveForeignObjectsAlone(t *testing.T) {
	cli := Client(t)
	ctx := context.Background()
	name := testName("untouched")
	f := foreign{t: t, cli: cli}
	f.network(name, "")
	f.volume(name, "")

	record(t, func(tb testing.TB) { Network(tb, cli, name) })
	record(t, func(tb testing.TB) { Volume(tb, cli, name) })

	net, err := cli.NetworkInspect(ctx, name, network.InspectOptions{})
	if err != nil || net.Labels[RunLabel] != "" {
		t.Errorf("foreign network after refusal: labels %v, err %v; want it unchanged",
			net.Labels, err)
	}
	vol, err := cli.VolumeInspect(ctx, name)
	if err != nil || vol.Labels[RunLabel] != "" {
		t.Errorf("foreign volume after refusal: labels %v, err %v; want it unchanged",
			vol.Labels, err)
	}
}

func TestRemoveContainerOnCleanup(t *testing.T) {
	cli := Client(t)
	ctx := context.Background()
	tag := standinForTest(t, cli)
	create := func(name string) string {
		c, err := cli.ContainerCreate(ctx, &container.Config{Image: tag, Labels: Labels()},
			nil, nil, nil, name)
		if err != nil {
			t.Fatalf("creating container %q: %v", name, err)
		}
		t.Cleanup(func() { cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}) })
		return c.ID
	}
	exists := func(id string) bool {
		_, err := cli.ContainerInspect(ctx, id)
		return err == nil
	}

	made := create(testName("made-by-code"))
	bystander := create(testName("bystander"))
	tests := []struct {
		name       string
		remove     string
		target     string
		wantExists bool
	}{
		{name: "removes-by-exact-name", remove: containerName(t, cli, made), target: made},
		{name: "ignores-an-id-prefix", remove: bystander[:12], target: bystander, wantExists: true},
		{name: "ignores-a-missing-name", remove: testName("never-made"), target: bystander,
			wantExists: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := record(t, func(tb testing.TB) { RemoveContainerOnCleanup(tb, cli, tt.remove) })
			if len(r.errors) != 0 || r.fatal != "" {
				t.Errorf("cleanup failures: got %q %q, want none", r.errors, r.fatal)
			}
			if got := exists(tt.target); got != tt.wantExists {
				t.Errorf("container exists after cleanup: got %v, want %v", got, tt.wantExists)
			}
		})
	}
}

func containerName(t *testing.T, cli *client.Client, id string) string {
	t.Helper()
	c, err := cli.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatalf("inspecting %s: %v", id, err)
	}
	return strings.TrimPrefix(c.Name, "/")
}
