package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// lockFile holds the daemon lock open for the life of the process: closing it (or
// letting the garbage collector close it) would release the lock.
var lockFile *os.File

// lockPath is the machine-wide lock the sockpin tests take before they use the daemon,
// because they and the demo use the same fixed names.
func lockPath() string {
	return filepath.Join(os.TempDir(), "sockpin-docker-tests.lock")
}

// lockDaemon takes the lock, waiting for a test run to finish. A lock an ancestor took
// for us (`flock /tmp/sockpin-docker-tests.lock make demo`) arrives as an inherited
// descriptor of the same open file, and is used as is.
func lockDaemon(ctx context.Context, p *printer) error {
	path := lockPath()
	if inheritedLock(path) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("opening the Docker lock: %w", err)
	}
	lockFile = f
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
		return nil
	}
	p.step("waiting for sockpin tests to finish with the Docker daemon (lock %s)", path)
	done := make(chan error, 1)
	go func() { done <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("taking the Docker lock: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// inheritedLock reports whether one of the process's descriptors is the lock file and
// already holds its lock.
func inheritedLock(path string) bool {
	want, err := os.Stat(path)
	if err != nil {
		return false
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return false
	}
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		got, err := os.Stat("/proc/self/fd/" + e.Name())
		if err != nil || !os.SameFile(got, want) {
			continue
		}
		// Locking succeeds at once only on the open file that holds the lock.
		if syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			return true
		}
	}
	return false
}
