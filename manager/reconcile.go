package manager

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Reconcile runs once at start-up, before the manager serves requests. It removes
// PostgREST containers left half-created by a crash (not running and without a config
// file) and temporary config files a crash left behind (they hold secrets), makes sure every running container's project has its PgBouncer line (the ini can
// lose lines, for example when the file in the install's checkout is replaced), and logs
// drift it does not repair: stopped containers with a config (the next spawn recreates
// them), running containers without a config file, and config files without a container.
// Failures are logged and returned joined; the caller decides whether they are fatal.
func (s *Service) Reconcile(ctx context.Context) error {
	cs, err := s.listPostgREST(ctx)
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
		}
	}

	s.removeTempFiles()
	files, err := filepath.Glob(filepath.Join(s.cfg.ConfigDir, "proj_*.conf"))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, f := range files {
		id := strings.TrimSuffix(filepath.Base(f), ".conf")
		if ValidProjectID(id) && !seen[id] {
			s.log.Warn("drift: config file without container", "project", id)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) reconcileContainer(ctx context.Context, id, state string) error {
	_, statErr := os.Stat(s.configPath(id))
	hasConfig := statErr == nil
	if state != "running" {
		if hasConfig {
			s.log.Warn("drift: container not running", "project", id, "state", state)
			return nil
		}
		if _, err := s.removeContainer(ctx, ContainerName(id)); err != nil {
			return err
		}
		s.log.Info("removed half-created container", "project", id, "state", state)
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
