// Package manager is the service LaunchDB's platform-api calls to spawn, reload, list and
// destroy one PostgREST container per tenant project. It is a drop-in replacement for the
// Node.js postgrest-manager: same routes, header, status codes, error codes and messages,
// response fields, config file bytes and configHash (see
// ../shared/spec/launchdb-manager.md), with the bugs listed there fixed.
//
// The manager reads projects and encrypted secrets from the platform database, writes each
// project's PostgREST config file (mode 0600, atomically), registers the project's database
// line in PgBouncer through a pinned exec, and creates the container through the Docker
// Engine API, which it reaches only through the sockpin proxy. Operations on one project are
// serialised; a failed spawn undoes its own work.
package manager

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
)

// projectIDPattern is the project ID rule of platform-api and the Node manager. db_name
// values from the database must match it too before they are used anywhere.
var projectIDPattern = regexp.MustCompile(`^proj_[a-z0-9]{16}$`)

// ValidProjectID reports whether id is a well-formed project ID.
func ValidProjectID(id string) bool { return projectIDPattern.MatchString(id) }

// Service performs the manager's operations. It is safe for concurrent use.
type Service struct {
	cfg         Config
	db          Platform
	docker      Engine
	log         *slog.Logger
	metrics     *metrics
	locks       *projectLocks
	pgBouncerMu sync.Mutex
	probeClient *http.Client
	probePort   int // postgrestPort; unit tests point it at a local server

	// ready waits until a container answers; waitReady, replaced in unit tests.
	ready func(ctx context.Context, name, network string) error

	// recovered is closed when the start-up reconcile that RecoverInBackground runs has
	// finished; nil when there is none to wait for.
	recovered chan struct{}

	// lifecycle holds a slot for each container create, start, stop, restart or remove
	// in flight (see lifecycleSlot).
	lifecycle chan struct{}
}

// lifecycleCalls bounds the container lifecycle calls in flight at once.
const lifecycleCalls = 4

// lifecycleSlot waits for a free lifecycle slot and returns its release. Many creates
// or stops at once on one network gain nothing over a few, and can wedge the daemon:
// Docker 20.10's network store deadlocked under 50 concurrent stops here, leaving every
// call on those containers hanging until the daemon was restarted.
func (s *Service) lifecycleSlot() func() {
	s.lifecycle <- struct{}{}
	return func() { <-s.lifecycle }
}

// New returns a Service. log may be nil (logs are discarded).
func New(cfg Config, db Platform, docker Engine, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg:         cfg,
		db:          db,
		docker:      docker,
		log:         log,
		metrics:     newMetrics(),
		locks:       newProjectLocks(),
		probeClient: newProbeClient(),
		probePort:   postgrestPort,
		lifecycle:   make(chan struct{}, lifecycleCalls),
	}
	s.ready = s.waitReady
	return s
}
