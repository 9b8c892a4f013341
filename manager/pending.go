package manager

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// pendingPrefix begins the name of a file in the config directory that exists while an
// operation that creates or removes a project's parts (a spawn that creates its container,
// a destroy) is in flight, and after one that could not finish. Start-up reconciliation
// removes the parts of a project without a container only when it has such a file: they
// were left by this manager. A config file and PgBouncer line without one (a project whose
// container the proxy does not show, such as one the Node manager created) are left alone.
const pendingPrefix = ".pending-"

func (s *Service) pendingPath(projectID string) string {
	return filepath.Join(s.cfg.ConfigDir, pendingPrefix+projectID)
}

// markPending records that an operation on the project is in flight. It is written before
// the operation changes anything, so a crash at any later point finds it.
func (s *Service) markPending(projectID string) error {
	if err := os.WriteFile(s.pendingPath(projectID), nil, 0o600); err != nil {
		return fmt.Errorf("recording the operation in the config directory: %w", err)
	}
	return nil
}

// clearPending records that the project's operation ended with the project whole or gone.
func (s *Service) clearPending(projectID string) {
	err := os.Remove(s.pendingPath(projectID))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("removing the pending-operation file", "project", projectID, "error", err)
	}
}

// pendingProjects lists the projects with a pending-operation file.
func (s *Service) pendingProjects() (map[string]bool, error) {
	files, err := filepath.Glob(filepath.Join(s.cfg.ConfigDir, pendingPrefix+"*"))
	if err != nil {
		return nil, err
	}
	ids := make(map[string]bool, len(files))
	for _, f := range files {
		id := strings.TrimPrefix(filepath.Base(f), pendingPrefix)
		if ValidProjectID(id) {
			ids[id] = true
		}
	}
	return ids, nil
}
