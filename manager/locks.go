package manager

import (
	"context"
	"sync"
)

// projectLocks serialises operations per project: one spawn, restart or destroy at a time
// for a given ID, while different projects proceed in parallel. Entries exist only while
// someone holds or waits for them.
type projectLocks struct {
	mu    sync.Mutex
	locks map[string]*projectLock
}

type projectLock struct {
	sem  chan struct{}
	refs int
}

func newProjectLocks() *projectLocks {
	return &projectLocks{locks: make(map[string]*projectLock)}
}

// lock waits for the project's lock or for ctx to end. On success the caller must call the
// returned unlock exactly once.
func (l *projectLocks) lock(ctx context.Context, id string) (unlock func(), err error) {
	l.mu.Lock()
	pl := l.locks[id]
	if pl == nil {
		pl = &projectLock{sem: make(chan struct{}, 1)}
		l.locks[id] = pl
	}
	pl.refs++
	l.mu.Unlock()

	release := func() {
		l.mu.Lock()
		pl.refs--
		if pl.refs == 0 {
			delete(l.locks, id)
		}
		l.mu.Unlock()
	}
	select {
	case pl.sem <- struct{}{}:
		return func() { <-pl.sem; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
