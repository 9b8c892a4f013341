package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/launchdb/sockpin/internal/dockertest"
)

// TestSharedPrefixAgainstDaemon makes a container the client may not see
// share the first character of a managed container's ID. The daemon finds
// that prefix ambiguous; through the proxy it names the managed container,
// as it would if the hidden one did not exist.
func TestSharedPrefixAgainstDaemon(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.StandinImage(t, cli, dockertest.PostgRESTImage)
	dockertest.Network(t, cli, "launchdb-internal")
	managed := dockertest.Container(t, cli, dockertest.Spec{Name: "postgrest-proj_0123456789abcdef",
		Image: dockertest.PostgRESTImage, Entrypoint: []string{"/app", "sleep"}, Network: "launchdb-internal",
		Labels: map[string]string{"io.launchdb.role": "postgrest", "io.launchdb.project": "proj_0123456789abcdef"}})
	prefix := managed[:1]

	// One ID in 16 starts with the same character; 200 tries all miss once
	// in about 400,000 runs. The misses are removed at once, never started.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hidden := ""
	for i := 0; i < 200 && hidden == ""; i++ {
		c, err := cli.ContainerCreate(ctx, &container.Config{Image: dockertest.PostgRESTImage,
			Labels: dockertest.Labels()}, nil, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if c.ID[:1] == prefix {
			hidden = c.ID
			t.Cleanup(func() {
				if err := cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{}); err != nil &&
					!cerrdefs.IsNotFound(err) {
					t.Errorf("removing %s: %v", c.ID[:12], err)
				}
			})
		} else if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if hidden == "" {
		t.Fatalf("no container ID of 200 began with %q", prefix)
	}
	if _, err := cli.ContainerInspect(ctx, prefix); err == nil {
		t.Fatalf("the daemon resolves %q alone; the test needs it ambiguous", prefix)
	}

	px := dockertest.StartProxy(t, dockertest.ProxyOptions{})
	got, err := px.Client(t).ContainerInspect(ctx, prefix)
	if err != nil {
		t.Fatalf("inspect %q through the proxy: %v; want the managed container %s", prefix, err, managed)
	}
	if got.ID != managed {
		t.Fatalf("inspect %q through the proxy: got %s, want the managed container %s", prefix, got.ID, managed)
	}
	if _, err := px.Client(t).ContainerInspect(ctx, hidden[:12]); !cerrdefs.IsNotFound(err) {
		t.Errorf("inspect of the hidden container through the proxy: got %v, want not found", err)
	}
}

// TestSharedNetworkPrefixAgainstDaemon does the same with a network the
// policy does not name.
func TestSharedNetworkPrefixAgainstDaemon(t *testing.T) {
	cli := dockertest.Client(t)
	internal := dockertest.Network(t, cli, "launchdb-internal")
	prefix := internal[:1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ambiguous := func() bool {
		_, err := cli.NetworkInspect(ctx, prefix, network.InspectOptions{})
		return err != nil
	}
	for i := 0; i < 200 && !ambiguous(); i++ {
		n, err := cli.NetworkCreate(ctx, fmt.Sprintf("sockpin-prefix-%s-%d", dockertest.RunID(), i),
			network.CreateOptions{Driver: "bridge", Internal: true, Labels: dockertest.Labels()})
		if err != nil {
			t.Fatal(err)
		}
		if n.ID[:1] == prefix {
			t.Cleanup(func() {
				if err := cli.NetworkRemove(context.Background(), n.ID); err != nil && !cerrdefs.IsNotFound(err) {
					t.Errorf("removing network %s: %v", n.ID[:12], err)
				}
			})
		} else if err := cli.NetworkRemove(ctx, n.ID); err != nil {
			t.Fatal(err)
		}
	}
	if !ambiguous() {
		t.Fatalf("no network ID of 200 began with %q", prefix)
	}
	px := dockertest.StartProxy(t, dockertest.ProxyOptions{})
	got, err := px.Client(t).NetworkInspect(ctx, prefix, network.InspectOptions{})
	if err != nil || got.ID != internal {
		t.Fatalf("inspect %q through the proxy: got %q, %v; want launchdb-internal %s", prefix, got.ID, err, internal)
	}
}
