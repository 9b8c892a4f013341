package manager

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// configFile is what a project's config file held before the manager touched it, so a
// failed operation can put it back.
type configFile struct {
	data    []byte
	exists  bool
	modTime time.Time
}

func (s *Service) configPath(projectID string) string {
	return filepath.Join(s.cfg.ConfigDir, projectID+".conf")
}

// readConfigFile returns the current content of path; a missing file is not an error.
func readConfigFile(path string) (configFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return configFile{}, nil
	}
	if err != nil {
		return configFile{}, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return configFile{}, fmt.Errorf("reading config: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return configFile{}, fmt.Errorf("reading config: %w", err)
	}
	return configFile{data: data, exists: true, modTime: st.ModTime()}, nil
}

// writeFileAtomic replaces path with data, mode 0600: a temp file in the same directory,
// synced, then renamed over path, so a reader (or a crash) never sees a partial config.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// restoreConfigFile puts back what readConfigFile returned: the old content, or no file.
func restoreConfigFile(path string, prev configFile) error {
	if prev.exists {
		return writeFileAtomic(path, prev.data)
	}
	return removeFile(path)
}

// removeFile removes path; a missing file is not an error.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing config: %w", err)
	}
	return nil
}
