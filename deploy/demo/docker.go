package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
)

// runLabel marks every object the demo creates; its value is the run ID.
const runLabel = "sockpin.demo.run"

// fixedObject is a Docker object with a name LaunchDB fixes, which the demo creates and
// which must therefore not exist already unless an earlier demo left it.
type fixedObject struct {
	kind, name string
}

var fixedObjects = []fixedObject{
	{"container", "launchdb-pgbouncer"},
	{"container", "launchdb-postgrest-manager"},
	{"network", "launchdb-internal"},
	{"volume", "launchdb_postgrest-projects"},
	{"image", "launchdb/postgrest:v1"},
}

// labelsOf returns the labels of a fixed object, and whether it exists.
func labelsOf(ctx context.Context, cli *client.Client, o fixedObject) (map[string]string,
	bool, error,
) {
	var labels map[string]string
	var err error
	switch o.kind {
	case "container":
		var c container.InspectResponse
		if c, err = cli.ContainerInspect(ctx, o.name); err == nil {
			labels = c.Config.Labels
		}
	case "network":
		var n network.Inspect
		if n, err = cli.NetworkInspect(ctx, o.name, network.InspectOptions{}); err == nil {
			labels = n.Labels
		}
	case "volume":
		var v volume.Volume
		if v, err = cli.VolumeInspect(ctx, o.name); err == nil {
			labels = v.Labels
		}
	case "image":
		var i image.InspectResponse
		if i, err = cli.ImageInspect(ctx, o.name); err == nil && i.Config != nil {
			labels = i.Config.Labels
		}
	}
	if cerrdefs.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("inspecting %s %s: %w", o.kind, o.name, err)
	}
	return labels, true, nil
}

// preflight refuses to start when one of LaunchDB's fixed names is taken by something
// the demo did not create, and removes what earlier demo runs left behind.
func preflight(ctx context.Context, cli *client.Client, p *printer) error {
	var taken []string
	leftovers := map[string]bool{}
	for _, o := range fixedObjects {
		labels, exists, err := labelsOf(ctx, cli, o)
		if err != nil {
			return err
		}
		switch {
		case !exists:
		case labels[runLabel] != "":
			leftovers[labels[runLabel]] = true
		default:
			taken = append(taken, o.kind+" "+o.name)
		}
	}
	if len(taken) > 0 {
		return fmt.Errorf("%s already exist(s) and the demo did not create them: "+
			"LaunchDB or a sockpin test may be using this daemon. Stop it, or remove "+
			"them if they are leftovers, then run make demo again",
			strings.Join(taken, ", "))
	}
	for _, id := range slices.Sorted(maps.Keys(leftovers)) {
		p.step("removing what an earlier demo (run %s) left behind", id)
		if _, err := sweep(ctx, cli, id, ""); err != nil {
			return err
		}
	}
	return nil
}

// sweep removes every container, network, volume and image labelled with the run ID,
// in that order, and says what it removed. With project set it also removes that
// project's PostgREST container, which the manager made with LaunchDB's labels only.
func sweep(ctx context.Context, cli *client.Client, runID, project string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", runLabel+"="+runID))
	var errs []error
	var removed []string
	count := func(n int, what string) {
		switch {
		case n == 1:
			removed = append(removed, "1 "+what)
		case n > 1:
			removed = append(removed, fmt.Sprintf("%d %ss", n, what))
		}
	}

	// A spawn the manager was making when the demo was interrupted can
	// create its container after the first listing; once the manager's own
	// container is gone nothing creates more, so a second pass finds the rest.
	containers := 0
	for pass := 0; pass < 3; pass++ {
		cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		errs = append(errs, err)
		if project != "" {
			ps, err := cli.ContainerList(ctx, container.ListOptions{All: true,
				Filters: filters.NewArgs(filters.Arg("label", "io.launchdb.project="+project))})
			errs = append(errs, err)
			cs = append(cs, ps...)
		}
		if len(cs) == 0 {
			break
		}
		for _, c := range cs {
			// Gone already is fine: the manager undoes a spawn it could not finish.
			err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
			switch {
			case err == nil:
				containers++
			case !cerrdefs.IsNotFound(err):
				errs = append(errs, err)
			}
		}
		time.Sleep(time.Second)
	}
	count(containers, "container")

	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	errs = append(errs, err)
	for _, n := range ns {
		errs = append(errs, cli.NetworkRemove(ctx, n.ID))
	}
	count(len(ns), "network")

	vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	errs = append(errs, err)
	for _, v := range vs.Volumes {
		errs = append(errs, cli.VolumeRemove(ctx, v.Name, true))
	}
	count(len(vs.Volumes), "volume")

	is, err := cli.ImageList(ctx, image.ListOptions{Filters: f})
	errs = append(errs, err)
	for _, i := range is {
		_, err := cli.ImageRemove(ctx, i.ID, image.RemoveOptions{Force: true,
			PruneChildren: true})
		if !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	count(len(is), "image")

	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("removing the demo's Docker objects: %w", err)
	}
	if len(removed) == 0 {
		return "nothing", nil
	}
	return strings.Join(removed, ", "), nil
}
