package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/docker/docker/api/types/container"
)

// Spawn statuses, the status field of SpawnResult.
const (
	StatusRunning        = "running"         // created and started: HTTP 201
	StatusAlreadyRunning = "already_running" // running with the current config: HTTP 200
	StatusReloaded       = "reloaded"        // restarted with a changed config: HTTP 200
)

// SpawnResult is the body of a successful spawn, field for field the Node manager's.
type SpawnResult struct {
	ProjectID     string `json:"projectId"`
	ContainerID   string `json:"containerId"`
	ContainerName string `json:"containerName"`
	Port          int    `json:"port"`
	Status        string `json:"status"`
	ConfigHash    string `json:"configHash"`
}

// desired is what a project's PostgREST should run with, from the platform database.
type desired struct {
	projectID string
	dbName    string
	config    []byte
	hash      string
}

// Spawn makes the project's PostgREST container run with its current config and answer
// HTTP, and registers its PgBouncer line. Calls for one project run one at a time; a call
// waits for the previous one (while ctx lasts), then checks the state afresh. Once it holds
// the lock it finishes even if ctx is cancelled, so it never stops half-way.
func (s *Service) Spawn(ctx context.Context, projectID string) (res SpawnResult, err error) {
	done := s.metrics.begin("spawn")
	defer func() { done(spawnOutcome(res, err)) }()

	unlock, err := s.lock(ctx, projectID)
	if err != nil {
		return SpawnResult{}, lockFailed("spawn_failed", projectID, err)
	}
	defer unlock()
	ctx = context.WithoutCancel(ctx)

	want, err := s.desiredState(ctx, projectID)
	if err != nil {
		return SpawnResult{}, err
	}
	res, err = s.converge(ctx, want)
	if err != nil {
		return SpawnResult{}, s.withCause(err, "spawn_failed")
	}
	return res, nil
}

func spawnOutcome(res SpawnResult, err error) string {
	var ae *apiError
	switch {
	case err == nil:
		return res.Status
	case errors.As(err, &ae) && ae.status < 500:
		return "rejected"
	}
	return "failed"
}

// desiredState reads the project and its secrets and builds the config file (spec 1.5
// steps 1-6, same errors in the same order).
func (s *Service) desiredState(ctx context.Context, projectID string) (desired, error) {
	p, err := s.db.Project(ctx, projectID)
	if errors.Is(err, ErrNotFound) {
		return desired{}, &apiError{status: http.StatusNotFound, code: "project_not_found",
			message: "Project " + projectID + " not found"}
	}
	if err != nil {
		return desired{}, dbUnavailable(err)
	}
	if p.Status != "active" {
		return desired{}, &apiError{status: http.StatusBadRequest, code: "project_not_active",
			message: "Project status is " + p.Status + ", expected active"}
	}
	// db_name reaches a root shell in PgBouncer and the db-uri: it must be a plain ID.
	if !ValidProjectID(p.DBName) {
		return desired{}, failed("spawn_failed",
			fmt.Errorf("project %s has an invalid db_name %q", projectID, p.DBName))
	}

	secrets, err := s.readSecrets(ctx, projectID)
	if err != nil {
		return desired{}, err
	}
	config := BuildPostgRESTConfig(projectID, p.DBName, secrets)
	return desired{projectID: projectID, dbName: p.DBName, config: config,
		hash: ConfigHash(config)}, nil
}

func dbUnavailable(err error) *apiError {
	return failed("spawn_failed", fmt.Errorf("platform database unavailable: %w", err))
}

// readSecrets fetches the newest JWT secret and database password, then decrypts them: a
// missing secret is reported before one that does not decrypt, as in the Node manager.
func (s *Service) readSecrets(ctx context.Context, projectID string) (ProjectSecrets, error) {
	missing := map[string]string{
		SecretJWT:        "JWT secret not found for project",
		SecretDBPassword: "Database password not found for project",
	}
	types := [2]string{SecretJWT, SecretDBPassword}
	var blobs [2][]byte
	for i, typ := range types {
		var err error
		blobs[i], err = s.db.Secret(ctx, projectID, typ)
		if errors.Is(err, ErrNotFound) {
			return ProjectSecrets{}, &apiError{status: http.StatusInternalServerError,
				code: "secret_not_found", message: missing[typ]}
		}
		if err != nil {
			return ProjectSecrets{}, dbUnavailable(err)
		}
	}
	var plain [2]string
	for i, typ := range types {
		var err error
		plain[i], err = s.cfg.MasterKey.Decrypt(blobs[i])
		// An empty secret decrypts (platform-api can store one) but would give PostgREST an
		// empty JWT key or password; refuse it as the Node manager did.
		if err == nil && plain[i] == "" {
			err = errors.New("secret is empty")
		}
		if err != nil {
			return ProjectSecrets{}, &apiError{status: http.StatusInternalServerError,
				code: "decryption_failed", message: "Failed to decrypt project secrets",
				cause: fmt.Errorf("%s: %w", typ, err)}
		}
	}
	return ProjectSecrets{JWTSecret: plain[0], DBPassword: plain[1]}, nil
}

// converge brings Docker, PgBouncer and the config file in line with want.
func (s *Service) converge(ctx context.Context, want desired) (SpawnResult, error) {
	prev, err := readConfigFile(s.configPath(want.projectID))
	if err != nil {
		return SpawnResult{}, err
	}
	cur, found, err := s.findContainer(ctx, want.projectID)
	if err != nil {
		return SpawnResult{}, err
	}
	network, err := s.tenantNetwork(ctx)
	if err != nil {
		return SpawnResult{}, err
	}

	if found && isRunning(cur) && s.specMatches(cur, want.projectID, network) {
		return s.refresh(ctx, want, prev, cur, network)
	}
	// From here the project's parts are created or replaced: a crash part-way leaves the
	// pending file for start-up reconciliation to find.
	if err := s.markPending(want.projectID); err != nil {
		return SpawnResult{}, err
	}
	if !found {
		return s.create(ctx, want, prev, network)
	}
	// Stopped, crash-looping, or created with another spec (image, network, bind):
	// recreate rather than report a container that is not what the manager would run.
	s.log.Info("removing container before re-creating it", "project", want.projectID,
		"container_id", cur.ID, "state", stateOf(cur))
	if _, err := s.removeContainer(ctx, cur.ID); err != nil {
		return SpawnResult{}, err
	}
	res, err := s.create(ctx, want, prev, network)
	if err != nil && isRunning(cur) {
		// A running project is not left without a container because its new spec could
		// not be started (an image the policy does not pin yet, for example).
		if rerr := s.restoreContainer(ctx, want.projectID, cur); rerr != nil {
			err = joinErrors([]error{err, rerr})
		}
	}
	return res, err
}

// restoreContainer creates and starts the project's container again as cur was created
// (image, command, network, bind), after a replacement failed. The config file is the
// one the failed spawn put back.
func (s *Service) restoreContainer(ctx context.Context, projectID string,
	cur container.InspectResponse,
) error {
	if cur.Config == nil || cur.HostConfig == nil {
		return errors.New("the previous container cannot be restored: its spec is unknown")
	}
	cfg, host := s.containerSpec(projectID, string(cur.HostConfig.NetworkMode))
	cfg.Image, cfg.Cmd, host.Binds = cur.Config.Image, cur.Config.Cmd, cur.HostConfig.Binds
	id, err := s.createAndStart(ctx, ContainerName(projectID), cfg, host, func() {})
	if err != nil {
		s.log.Error("the previous container could not be restored; the project has none",
			"project", projectID, "error", err)
		return fmt.Errorf("restoring the previous container: %w", err)
	}
	s.log.Warn("the previous container was restored", "project", projectID,
		"container_id", id, "image", cfg.Image)
	return nil
}

// refresh handles a running container: unchanged config means already_running once it
// answers; a changed config (or a file written after the container started, which it has
// therefore not read) means write, restart and wait. A failed reload puts the old file
// back, so the next spawn sees the change again instead of skipping it.
func (s *Service) refresh(ctx context.Context, want desired, prev configFile,
	cur container.InspectResponse, network string,
) (SpawnResult, error) {
	name := ContainerName(want.projectID)
	res := SpawnResult{ProjectID: want.projectID, ContainerID: name, ContainerName: name,
		Port: postgrestPort, ConfigHash: want.hash}

	unchanged := prev.exists && bytes.Equal(prev.data, want.config)
	if unchanged && !loadedBefore(cur, prev.modTime) {
		if _, err := s.editPgBouncer(ctx, PgBouncerAdd, want.projectID, want.dbName); err != nil {
			return SpawnResult{}, pgBouncerAddFailed(err)
		}
		if err := s.ready(ctx, name, network); err != nil {
			return SpawnResult{}, err
		}
		res.Status = StatusAlreadyRunning
		return res, nil
	}

	path := s.configPath(want.projectID)
	if err := writeFileAtomic(path, want.config); err != nil {
		return SpawnResult{}, err
	}
	restarted := false
	err := func() error {
		if _, err := s.editPgBouncer(ctx, PgBouncerAdd, want.projectID, want.dbName); err != nil {
			return pgBouncerAddFailed(err)
		}
		restarted = true
		if err := s.restartContainer(ctx, name); err != nil {
			return err
		}
		return s.ready(ctx, name, network)
	}()
	if err != nil {
		s.rollbackReload(want.projectID, prev, restarted)
		return SpawnResult{}, err
	}
	s.log.Info("container restarted with new config",
		"project", want.projectID, "config_hash", want.hash)
	res.Status = StatusReloaded
	return res, nil
}

// loadedBefore reports whether the container started before the config file was last
// written, i.e. runs with an older config than the file holds (a crash between write and
// restart). Both times come from the same host clock.
func loadedBefore(c container.InspectResponse, modTime time.Time) bool {
	if c.State == nil {
		return true
	}
	started, err := time.Parse(time.RFC3339Nano, c.State.StartedAt)
	return err != nil || modTime.After(started)
}

// rollbackReload restores the previous config file and, if the container was restarted
// with the new one, restarts it again so it runs what the file says.
func (s *Service) rollbackReload(projectID string, prev configFile, restarted bool) {
	ctx, cancel := context.WithTimeout(context.Background(), stopCallTimeout)
	defer cancel()
	if err := restoreConfigFile(s.configPath(projectID), prev); err != nil {
		s.log.Error("rollback: restoring config file", "project", projectID, "error", err)
		return
	}
	if restarted && prev.exists {
		if err := s.restartContainer(ctx, ContainerName(projectID)); err != nil {
			s.log.Error("rollback: restarting container", "project", projectID, "error", err)
		}
	}
}

// create writes the config, registers PgBouncer, creates and starts the container and
// waits until it answers. On failure it removes what it added: the container it created,
// the PgBouncer line it added, the config file it wrote (or the previous content). The
// pending file goes once the project is whole, or once all of that is taken back.
func (s *Service) create(ctx context.Context, want desired, prev configFile, network string) (
	SpawnResult, error,
) {
	name := ContainerName(want.projectID)
	path := s.configPath(want.projectID)
	var u undo

	// The config file first: a crash after it leaves a file without a container, which
	// start-up reconciliation removes together with the PgBouncer line (the pending file
	// says this manager wrote them).
	if !prev.exists || !bytes.Equal(prev.data, want.config) {
		u.config = true
		if err := writeFileAtomic(path, want.config); err != nil {
			s.undo(want.projectID, u, prev)
			return SpawnResult{}, err
		}
	}

	added, err := s.editPgBouncer(ctx, PgBouncerAdd, want.projectID, want.dbName)
	if added {
		u.pgBouncer = true
	}
	if err != nil {
		s.undo(want.projectID, u, prev)
		return SpawnResult{}, pgBouncerAddFailed(err)
	}

	id, err := s.createContainer(ctx, want.projectID, network, &u)
	if err == nil {
		err = s.ready(ctx, name, network)
	}
	if err != nil {
		s.undo(want.projectID, u, prev)
		return SpawnResult{}, err
	}
	s.clearPending(want.projectID)
	s.log.Info("container created",
		"project", want.projectID, "container_id", id, "config_hash", want.hash)
	return SpawnResult{ProjectID: want.projectID, ContainerID: id, ContainerName: name,
		Port: postgrestPort, Status: StatusRunning, ConfigHash: want.hash}, nil
}

// createContainer creates and starts the container, recording it in u once it exists.
func (s *Service) createContainer(ctx context.Context, projectID, network string, u *undo) (
	string, error,
) {
	cfg, host := s.containerSpec(projectID, network)
	return s.createAndStart(ctx, ContainerName(projectID), cfg, host, func() { u.container = true })
}

// createAndStart creates container name and starts it, calling created once it exists,
// within one lifecycle slot.
func (s *Service) createAndStart(ctx context.Context, name string, cfg *container.Config,
	host *container.HostConfig, created func(),
) (string, error) {
	defer s.lifecycleSlot()()
	cctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	c, err := s.docker.ContainerCreate(cctx, cfg, host, nil, nil, name)
	cancel()
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", name, err)
	}
	created()

	sctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	if err := s.docker.ContainerStart(sctx, c.ID, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("starting %s: %w", name, err)
	}
	return c.ID, nil
}

// undo lists what a failed spawn changed and must take back.
type undo struct {
	container bool // created postgrest-<id>
	pgBouncer bool // added the [databases] line
	config    bool // wrote the config file
}

func (s *Service) undo(projectID string, u undo, prev configFile) {
	ctx := context.Background()
	log := s.log.With("project", projectID)
	if u.container {
		if _, err := s.removeContainer(ctx, ContainerName(projectID)); err != nil {
			// Without Docker the container stays; so do its line and config, so that
			// what is left is a whole project that the next spawn or destroy (or
			// start-up reconciliation) handles, not a container without its config.
			log.Error("undo: removing container; the project is left whole", "error", err)
			return
		}
	}
	complete := true
	if u.pgBouncer {
		if _, err := s.editPgBouncer(ctx, PgBouncerRemove, projectID, projectID); err != nil {
			log.Error("undo: removing PgBouncer line", "error", err)
			complete = false
		}
	}
	if u.config {
		if err := restoreConfigFile(s.configPath(projectID), prev); err != nil {
			log.Error("undo: restoring config file", "error", err)
			complete = false
		}
	}
	if complete {
		s.clearPending(projectID)
	}
	log.Info("undid failed spawn",
		"container", u.container, "pgbouncer", u.pgBouncer, "config", u.config)
}

func pgBouncerAddFailed(err error) *apiError {
	return &apiError{status: http.StatusInternalServerError, code: "pgbouncer_add_failed",
		message: "Failed to add project database to PgBouncer: " + err.Error(), cause: err}
}

// restartContainer is a Docker restart (stop with grace period, then start). It is what
// "reload" means for PostgREST here: the image's wrapper turns SIGHUP into a crash-restart
// anyway (spec 5.2), and a restart is explicit, waits for the stop, and is synchronous.
func (s *Service) restartContainer(ctx context.Context, name string) error {
	defer s.lifecycleSlot()()
	ctx, cancel := context.WithTimeout(ctx, stopCallTimeout)
	defer cancel()
	grace := stopGraceSeconds
	err := s.docker.ContainerRestart(ctx, name, container.StopOptions{Timeout: &grace})
	if err != nil {
		return fmt.Errorf("restarting %s: %w", name, err)
	}
	return nil
}

func stateOf(c container.InspectResponse) string {
	if c.State == nil {
		return "unknown"
	}
	return c.State.Status
}
