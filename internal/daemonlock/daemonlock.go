// Package daemonlock serialises the programs of this repository that use
// the Docker daemon with fixed names (launchdb-internal, launchdb-pgbouncer,
// launchdb/postgrest:v1): the tests, the load tool and the demo each take
// this machine-wide lock before they create anything.
package daemonlock

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// Path is the lock file; `flock` on it from a shell takes the same lock.
func Path() string { return filepath.Join(os.TempDir(), "sockpin-docker-tests.lock") }

var (
	mu   sync.Mutex
	file *os.File // the lock, while this process holds it
	refs int
)

// Acquire takes the lock, calling waiting once if another process holds
// it. Within one process the lock is shared: a second Acquire does not
// wait for the first. The lock lasts until every release is called or the
// process ends.
func Acquire(waiting func()) (release func(), err error) {
	mu.Lock()
	defer mu.Unlock()
	if file == nil {
		f, err := os.OpenFile(Path(), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, err
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			if waiting != nil {
				waiting()
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
				f.Close()
				return nil, err
			}
		}
		file = f
	}
	refs++
	var once sync.Once
	return func() { once.Do(releaseOne) }, nil
}

func releaseOne() {
	mu.Lock()
	defer mu.Unlock()
	if refs--; refs == 0 {
		file.Close()
		file = nil
	}
}
