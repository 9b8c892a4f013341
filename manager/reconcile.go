package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// runningMarker is a file in the config directory that exists while a manager runs; finding
// it at start-up means the previous process did not stop cleanly.
const runningMarker = ".manager-running"

// Recover is the start-up reconcile. When the previous process did not stop cleanly, it
// first waits CrashRecoveryWait: Docker calls that process had in flight (a create, a
// PgBouncer edit) still land after it died, and a reconcile that ran before them would miss
// what they leave. Then it marks the config directory as in use until Stopped.
func (s *Service) Recover(ctx context.Context) error {
	marker := filepath.Join(s.cfg.ConfigDir, runningMarker)
	if _, err := os.Stat(marker); err == nil {
		s.log.Warn("the previous manager did not stop cleanly; waiting before reconciling",
			"wait", s.cfg.CrashRecoveryWait.String())
		select {
		case <-time.After(s.cfg.CrashRecoveryWait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := s.Reconcile(ctx)
	if werr := os.WriteFile(marker, nil, 0o600); werr != nil {
		err = errors.Join(err, fmt.Errorf("marking the config directory in use: %w", werr))
	}
	return err
}

// RecoverInBackground runs Recover while the server already answers. Spawn, destroy and
// restart wait until it has finished (as long as their callers wait), so reconciliation
// never finds an operation of this process half-way. Call it before serving; the channel
// yields Recover's error.
func (s *Service) RecoverInBackground(ctx context.Context) <-chan error {
	done := make(chan struct{})
	s.recovered = done
	errc := make(chan error, 1)
	go func() {
		errc <- s.Recover(ctx)
		close(done)
	}()
	return errc
}

// lock waits for start-up reconciliation, then takes the project's lock.
func (s *Service) lock(ctx context.Context, projectID string) (func(), error) {
	if s.recovered != nil {
		select {
		case <-s.recovered:
		case <-ctx.Done():
			return nil, fmt.Errorf("start-up reconciliation is still running: %w", ctx.Err())
		}
	}
	return s.locks.lock(ctx, projectID)
}

// Stopped records a clean stop: the next start-up need not wait for this process's calls.
func (s *Service) Stopped() {
	if err := removeFile(filepath.Join(s.cfg.ConfigDir, runningMarker)); err != nil {
		s.log.Warn("removing the running marker", "error", err)
	}
}

// Reconcile runs once at start-up, before the manager serves requests, and leaves every
// project either whole (running container, config file, PgBouncer line) or gone. What a
// crash in the middle of a spawn or destroy can leave is taken away: containers that never
// started (a crash between create and start) or are not running and have no config file,
// the config file and PgBouncer line of a project without a container whose operation was
// pending (a crash after writing the config, or during a destroy, or a destroy that could
// not finish), and temporary config files (they hold secrets). Every running container's
// project gets its PgBouncer line back if it is missing (the ini can lose lines, for
// example when the file in the install's checkout is replaced), and PgBouncer is reloaded
// once, in case a crash came between an edit and its reload. Drift it does not repair is
// logged: a stopped container with a config (the next spawn recreates it), a running
// container without a config file, and a config file without a visible container and
// without a pending operation (a container the proxy does not show, such as one created
// before this manager: its file and line keep it serving). Failures are logged and
// returned joined; the caller decides whether they are fatal.
func (s *Service) Reconcile(ctx context.Context) error {
	cs, err := s.listPostgREST(ctx)
	if err != nil {
		return err
	}
	pending, err := s.pendingProjects()
	if err != nil {
		return err
	}
	seen := make(map[string]bool)
	var errs []error
	for _, c := range cs {
		id := c.Labels[LabelProject]
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		if !ValidProjectID(id) || name != ContainerName(id) {
			s.log.Warn("drift: PostgREST container with unexpected name or project label",
				"container_id", c.ID, "name", name)
			continue
		}
		seen[id] = true
		if err := s.reconcileContainer(ctx, id, string(c.State)); err != nil {
			s.log.Error("reconcile", "project", id, "error", err)
			errs = append(errs, err)
			continue
		}
		if pending[id] {
			s.clearPending(id)
		}
	}

	s.removeTempFiles()
	files, err := filepath.Glob(filepath.Join(s.cfg.ConfigDir, "proj_*.conf"))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	withoutContainer := make(map[string]bool)
	for _, f := range files {
		if id := strings.TrimSuffix(filepath.Base(f), ".conf"); ValidProjectID(id) && !seen[id] {
			withoutContainer[id] = true
		}
	}
	for id := range pending {
		if !seen[id] {
			withoutContainer[id] = true
		}
	}
	for id := range withoutContainer {
		if !pending[id] {
			s.log.Warn("drift: config file without a visible container; left alone",
				"project", id)
			continue
		}
		if err := s.removeLeftovers(ctx, id); err != nil {
			s.log.Error("reconcile", "project", id, "error", err)
			errs = append(errs, err)
			continue
		}
		s.clearPending(id)
		s.log.Info("removed the config file and PgBouncer line of an unfinished operation",
			"project", id)
	}
	if err := s.reloadPgBouncer(ctx); err != nil {
		s.log.Error("reconcile", "error", err)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// reloadPgBouncer sends PgBouncer one SIGHUP. A manager that died after editing the ini
// but before the reload left PgBouncer running an older file; the edit itself finds
// nothing to change after a restart, so reconciliation reloads once regardless.
func (s *Service) reloadPgBouncer(ctx context.Context) error {
	s.pgBouncerMu.Lock()
	defer s.pgBouncerMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	if err := s.docker.ContainerKill(ctx, s.cfg.PgBouncerContainer, "SIGHUP"); err != nil {
		return fmt.Errorf("reloading PgBouncer (SIGHUP to %s): %w", s.cfg.PgBouncerContainer,
			err)
	}
	return nil
}

// removeLeftovers removes what a project has outside Docker: its PgBouncer line, then its
// config file, so that a failure leaves the file for the next start to find.
func (s *Service) removeLeftovers(ctx context.Context, id string) error {
	if _, err := s.editPgBouncer(ctx, PgBouncerRemove, id, id); err != nil {
		return fmt.Errorf("removing PgBouncer line of %s: %w", id, err)
	}
	return removeFile(s.configPath(id))
}

func (s *Service) reconcileContainer(ctx context.Context, id, state string) error {
	_, statErr := os.Stat(s.configPath(id))
	hasConfig := statErr == nil
	if state != "running" {
		// "created" is a container that never started: a spawn that stopped between
		// create and start. Without a config file it is one that stopped earlier.
		if hasConfig && state != "created" {
			s.log.Warn("drift: container not running", "project", id, "state", state)
			return nil
		}
		if _, err := s.removeContainer(ctx, ContainerName(id)); err != nil {
			return err
		}
		if err := s.removeLeftovers(ctx, id); err != nil {
			return err
		}
		s.log.Info("removed half-created project", "project", id, "state", state)
		return nil
	}
	if !hasConfig {
		s.log.Warn("drift: running container without config file", "project", id)
	}

	p, err := s.db.Project(ctx, id)
	if err != nil {
		s.log.Warn("reconcile: cannot check PgBouncer line without the project row",
			"project", id, "error", err)
		return nil
	}
	if p.Status != "active" {
		s.log.Warn("drift: running container of a project that is not active",
			"project", id, "status", p.Status)
	}
	if !ValidProjectID(p.DBName) {
		s.log.Warn("drift: project has an invalid db_name", "project", id)
		return nil
	}
	added, err := s.editPgBouncer(ctx, PgBouncerAdd, id, p.DBName)
	if err != nil {
		return err
	}
	if added {
		s.log.Warn("drift: PgBouncer line was missing; restored", "project", id)
	}
	return nil
}

// removeTempFiles deletes the temporary files of interrupted atomic writes and write
// checks. Nothing else writes them, and before the server starts nothing is writing.
func (s *Service) removeTempFiles() {
	for _, pattern := range []string{".proj_*.conf.tmp-*", ".write-check-*"} {
		files, _ := filepath.Glob(filepath.Join(s.cfg.ConfigDir, pattern))
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				s.log.Warn("removing leftover temporary file", "file", f, "error", err)
				continue
			}
			s.log.Info("removed leftover temporary file", "file", f)
		}
	}
}
