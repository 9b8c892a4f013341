package manager

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Engine is the part of the Docker Engine API the manager calls; *client.Client implements
// it. Every call the manager makes is one the proxy's default policy allows.
type Engine interface {
	Ping(ctx context.Context) (types.Ping, error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerInspect(ctx context.Context, containerID string) (container.InspectResponse, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig,
		networkingConfig *network.NetworkingConfig, platform *ocispec.Platform,
		containerName string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, containerID string, options container.StartOptions) error
	ContainerStop(ctx context.Context, containerID string, options container.StopOptions) error
	ContainerRestart(ctx context.Context, containerID string, options container.StopOptions) error
	ContainerKill(ctx context.Context, containerID, signal string) error
	ContainerRemove(ctx context.Context, containerID string, options container.RemoveOptions) error
	ContainerExecCreate(ctx context.Context, containerID string,
		options container.ExecOptions) (container.ExecCreateResponse, error)
	ContainerExecAttach(ctx context.Context, execID string,
		config container.ExecAttachOptions) (types.HijackedResponse, error)
	ContainerExecInspect(ctx context.Context, execID string) (container.ExecInspect, error)
}

// NewEngine returns a Docker client for host (tcp://host:port or unix:///path) that
// negotiates the API version with the daemon behind the proxy.
func NewEngine(host string) (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("creating Docker client for %s: %w", host, err)
	}
	return c, nil
}

// Timeouts of Docker calls. A stop or restart may take the container's grace period.
const (
	dockerCallTimeout = 10 * time.Second
	stopGraceSeconds  = 10
	stopCallTimeout   = dockerCallTimeout + stopGraceSeconds*time.Second
)

// Labels every PostgREST container carries; the proxy pins them and lists by them.
const (
	LabelRole     = "io.launchdb.role"
	LabelProject  = "io.launchdb.project"
	RolePostgREST = "postgrest"
)

// Where PostgREST containers see the config volume, and the port they serve.
const (
	containerConfigDir = "/etc/postgrest/projects"
	postgrestPort      = 3000
)

// ContainerName returns the PostgREST container name of a project.
func ContainerName(projectID string) string { return "postgrest-" + projectID }

// containerSpec returns the create request for a project's PostgREST container: exactly
// the fields the proxy's policy pins, nothing else.
func (s *Service) containerSpec(projectID, network string) (
	*container.Config, *container.HostConfig,
) {
	var env []string
	if s.cfg.Domain != "" {
		env = []string{"DOMAIN=" + s.cfg.Domain}
	}
	pids := int64(512)
	cfg := &container.Config{
		Image: s.cfg.Image,
		Cmd:   []string{containerConfigDir + "/" + projectID + ".conf"},
		Env:   env,
		Labels: map[string]string{
			LabelRole:    RolePostgREST,
			LabelProject: projectID,
		},
		// Kept for operators (docker ps shows health); the manager probes readiness
		// itself because the first probe would only run 30 s after start.
		Healthcheck: &container.HealthConfig{
			Test: []string{"CMD", "curl", "-f",
				fmt.Sprintf("http://localhost:%d/", postgrestPort)},
			Interval:    30 * time.Second,
			Timeout:     10 * time.Second,
			Retries:     3,
			StartPeriod: 30 * time.Second,
		},
	}
	host := &container.HostConfig{
		NetworkMode:   container.NetworkMode(network),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		Binds:         []string{s.cfg.ConfigVolume + ":" + containerConfigDir + ":ro"},
		SecurityOpt:   []string{"no-new-privileges"},
		Resources:     container.Resources{PidsLimit: &pids},
	}
	return cfg, host
}

// specMatches reports whether an existing container was created with the spec the manager
// would use now (image, command, labels, network, bind). A container that differs, for
// example after POSTGREST_IMAGE changed, is recreated rather than reported running.
func (s *Service) specMatches(c container.InspectResponse, projectID, network string) bool {
	if c.Config == nil || c.HostConfig == nil {
		return false
	}
	want, wantHost := s.containerSpec(projectID, network)
	return c.Config.Image == want.Image &&
		slices.Equal(c.Config.Cmd, want.Cmd) &&
		c.Config.Labels[LabelRole] == RolePostgREST &&
		c.Config.Labels[LabelProject] == projectID &&
		c.HostConfig.NetworkMode == wantHost.NetworkMode &&
		slices.Equal(c.HostConfig.Binds, wantHost.Binds)
}

// findContainer returns the project's PostgREST container, found by listing PostgREST
// containers with the project's label rather than by inspecting the name: the proxy
// treats a request on a container that does not exist as a refused target lookup.
func (s *Service) findContainer(ctx context.Context, projectID string) (
	container.InspectResponse, bool, error,
) {
	lctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	name := ContainerName(projectID)
	cs, err := s.docker.ContainerList(lctx, container.ListOptions{
		All: true,
		Filters: filters.NewArgs(
			filters.Arg("label", LabelRole+"="+RolePostgREST),
			filters.Arg("label", LabelProject+"="+projectID),
		),
	})
	if err != nil {
		return container.InspectResponse{}, false, fmt.Errorf("looking up %s: %w", name, err)
	}
	for _, c := range cs {
		if slices.Contains(c.Names, "/"+name) {
			return s.inspectContainer(ctx, c.ID)
		}
	}
	return container.InspectResponse{}, false, nil
}

// inspectContainer returns the container's inspect answer; found is false when Docker
// reports it absent.
func (s *Service) inspectContainer(ctx context.Context, name string) (
	container.InspectResponse, bool, error,
) {
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	c, err := s.docker.ContainerInspect(ctx, name)
	if cerrdefs.IsNotFound(err) {
		return container.InspectResponse{}, false, nil
	}
	if err != nil {
		return container.InspectResponse{}, false, fmt.Errorf("inspecting %s: %w", name, err)
	}
	return c, true, nil
}

// isRunning reports whether Docker considers the container up and not in a restart loop.
func isRunning(c container.InspectResponse) bool {
	return c.State != nil && c.State.Running && !c.State.Restarting && !c.State.Paused
}

// tenantNetwork returns POSTGREST_NETWORK or, when unset, the first network (in name
// order, as Docker's JSON lists them) of the PgBouncer container.
func (s *Service) tenantNetwork(ctx context.Context) (string, error) {
	if s.cfg.Network != "" {
		return s.cfg.Network, nil
	}
	c, found, err := s.inspectContainer(ctx, s.cfg.PgBouncerContainer)
	if err != nil {
		return "", fmt.Errorf("detecting the tenant network: %w", err)
	}
	if !found || c.NetworkSettings == nil || len(c.NetworkSettings.Networks) == 0 {
		return "", fmt.Errorf("detecting the tenant network: %s has no network",
			s.cfg.PgBouncerContainer)
	}
	names := make([]string, 0, len(c.NetworkSettings.Networks))
	for n := range c.NetworkSettings.Networks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names[0], nil
}

// removeContainer force-removes a container by name; absence is not an error. It reports
// whether a container was removed.
func (s *Service) removeContainer(ctx context.Context, name string) (bool, error) {
	defer s.lifecycleSlot()()
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	err := s.docker.ContainerRemove(ctx, name, container.RemoveOptions{Force: true})
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("removing %s: %w", name, err)
	}
	return true, nil
}
