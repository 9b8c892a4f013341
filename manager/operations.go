package manager

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// Destroy stops and removes the project's container, removes its PgBouncer line (and
// reloads PgBouncer) and deletes its config file. It needs neither the project row nor its
// secrets. It reports whether a container was removed. If the container cannot be
// removed (the Docker API is unreachable, for example) nothing else is changed; after it,
// both other steps are attempted, and the error names each step that failed and what it
// could not reach.
func (s *Service) Destroy(ctx context.Context, projectID string) (removed bool, err error) {
	done := s.metrics.begin("destroy")
	defer func() { done(destroyOutcome(removed, err)) }()

	unlock, err := s.lock(ctx, projectID)
	if err != nil {
		return false, lockFailed("destroy_failed", projectID, err)
	}
	defer unlock()
	ctx = context.WithoutCancel(ctx)
	if err := s.markPending(projectID); err != nil {
		return false, s.withCause(err, "destroy_failed")
	}

	// The container goes first. While it stays (the Docker API cannot be reached, or
	// refuses), its line and config stay too: removing them under a running container would
	// leave half a project.
	c, found, err := s.findContainer(ctx, projectID)
	if err == nil && found {
		removed, err = s.stopAndRemove(ctx, projectID, c.ID)
	}
	if err != nil {
		return false, s.withCause(err, "destroy_failed")
	}
	var errs []error
	if _, err := s.editPgBouncer(ctx, PgBouncerRemove, projectID, projectID); err != nil {
		errs = append(errs, fmt.Errorf("removing PgBouncer line: %w", err))
	}
	if err := removeFile(s.configPath(projectID)); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		// The pending file stays: the next destroy, or start-up reconciliation, removes
		// what is left.
		return removed, s.withCause(joinErrors(errs), "destroy_failed")
	}
	s.clearPending(projectID)
	s.log.Info("project destroyed", "project", projectID, "container_removed", removed)
	return removed, nil
}

func destroyOutcome(removed bool, err error) string {
	switch {
	case err != nil:
		return "failed"
	case removed:
		return "stopped"
	}
	return "cleaned_up"
}

// stopAndRemove stops the project's container (ID id) with its grace period, then removes
// it. It reports whether there was still a container to remove.
func (s *Service) stopAndRemove(ctx context.Context, projectID, id string) (bool, error) {
	name := ContainerName(projectID)
	release := s.lifecycleSlot()
	sctx, cancel := context.WithTimeout(ctx, stopCallTimeout)
	grace := stopGraceSeconds
	err := s.docker.ContainerStop(sctx, id, container.StopOptions{Timeout: &grace})
	cancel()
	release()
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stopping %s: %w", name, err)
	}
	return s.removeContainer(ctx, id)
}

// joinErrors joins errors into one whose text is a single line, for a JSON message.
func joinErrors(errs []error) error { return stepErrors(errs) }

type stepErrors []error

func (e stepErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e stepErrors) Unwrap() []error { return e }

// Restart restarts the project's running container with Docker's restart operation, so it
// rereads its config file. The route is called "reload" for compatibility, but the Node
// manager's SIGHUP also ended in a restart (spec 5.2, B15); this one is explicit and waits
// for the stop and start.
func (s *Service) Restart(ctx context.Context, projectID string) (err error) {
	done := s.metrics.begin("restart")
	defer func() {
		outcome := "reloaded"
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusNotFound {
			outcome = "not_found"
		} else if err != nil {
			outcome = "failed"
		}
		done(outcome)
	}()

	unlock, err := s.lock(ctx, projectID)
	if err != nil {
		return lockFailed("reload_failed", projectID, err)
	}
	defer unlock()
	ctx = context.WithoutCancel(ctx)

	c, found, err := s.findContainer(ctx, projectID)
	if err != nil {
		return s.withCause(err, "reload_failed")
	}
	if !found || !isRunning(c) {
		return &apiError{status: http.StatusNotFound, code: "not_found",
			message: "Container not running"}
	}
	if err := s.restartContainer(ctx, ContainerName(projectID)); err != nil {
		return s.withCause(err, "reload_failed")
	}
	s.log.Info("container restarted", "project", projectID)
	return nil
}

// ContainerInfo is one entry of the list route: the union of the Node manager's documented
// and intended shapes.
type ContainerInfo struct {
	ProjectID     string `json:"projectId"`
	ContainerName string `json:"containerName"`
	Port          int    `json:"port"`
	Status        string `json:"status"` // Docker state: running, exited, restarting, ...
	Health        string `json:"health"` // Docker status text, e.g. "Up 5 minutes (healthy)"
}

// List returns every PostgREST container (any state), sorted by project ID.
func (s *Service) List(ctx context.Context) (infos []ContainerInfo, err error) {
	done := s.metrics.begin("list")
	defer func() {
		if err != nil {
			done("failed")
		} else {
			done("ok")
		}
	}()
	cs, err := s.listPostgREST(ctx)
	if err != nil {
		return nil, s.withCause(err, "list_failed")
	}
	infos = make([]ContainerInfo, 0, len(cs))
	for _, c := range cs {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		infos = append(infos, ContainerInfo{ProjectID: c.Labels[LabelProject], ContainerName: name,
			Port: postgrestPort, Status: string(c.State), Health: c.Status})
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].ProjectID < infos[j].ProjectID })
	return infos, nil
}

// listPostgREST lists containers labelled as PostgREST, in any state.
func (s *Service) listPostgREST(ctx context.Context) ([]container.Summary, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	cs, err := s.docker.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelRole+"="+RolePostgREST)),
	})
	if err != nil {
		return nil, fmt.Errorf("listing PostgREST containers: %w", err)
	}
	return cs, nil
}

// Health checks what spawn needs: the platform database, the Docker API (through the
// proxy) and a writable config directory. It returns one error per failed check, keyed by
// check name; an empty map means healthy.
func (s *Service) Health(ctx context.Context) map[string]error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	checks := map[string]func() error{
		"database": func() error { return s.db.Ping(ctx) },
		"docker": func() error {
			_, err := s.docker.Ping(ctx)
			return err
		},
		"config_dir": func() error { return CheckConfigDir(s.cfg.ConfigDir) },
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		problems = make(map[string]error)
	)
	for name, check := range checks {
		wg.Go(func() {
			if err := check(); err != nil {
				mu.Lock()
				problems[name] = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return problems
}

// healthTimeout bounds /health: compose probes it with a 10 s timeout.
const healthTimeout = 3 * time.Second

// CheckConfigDir verifies that the manager can create files in dir (spec B8: a volume
// created root-owned is not writable by UID 1001).
func CheckConfigDir(dir string) error {
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("config directory %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}
