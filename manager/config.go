package manager

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config is the manager's runtime configuration. ConfigFromEnv fills it from the environment
// variables the Node manager used, plus the values it hard-coded.
type Config struct {
	// Port is the HTTP listen port (PORT, default 9000). The service has no TLS and no other
	// protection than the API key: it must only be reachable from platform-api's network.
	Port int

	// InternalAPIKey is the shared secret platform-api sends in X-Internal-Key
	// (INTERNAL_API_KEY, required). Anyone holding it can create and destroy tenant
	// containers.
	InternalAPIKey string

	// PlatformDSN is the libpq URL or key/value string of the platform database
	// (PLATFORM_DB_DSN, required). The role needs only SELECT on platform.projects and
	// platform.secrets. Never logged.
	PlatformDSN string

	// MasterKey decrypts project secrets (LAUNCHDB_MASTER_KEY, required: base64 of 32
	// bytes). It can decrypt every tenant's database password and JWT secret.
	MasterKey MasterKey

	// DockerHost is the Engine API endpoint, the sockpin proxy (DOCKER_HOST, default
	// tcp://docker-socket-proxy:2375; tcp:// or unix://). Never point it at the raw socket
	// in production: the proxy's policy is what limits this service.
	DockerHost string

	// Domain is passed to every PostgREST container as DOMAIN=<value> when non-empty
	// (DOMAIN, default empty). PostgREST does not read it; kept for parity.
	Domain string

	// Image is the PostgREST image (POSTGREST_IMAGE, default launchdb/postgrest:v1). The
	// manager never pulls; the proxy pins the same image.
	Image string

	// ConfigDir is where the manager writes <projectId>.conf files, mode 0600
	// (POSTGREST_CONFIG_DIR, default /etc/postgrest/projects). The files hold plaintext
	// tenant secrets.
	ConfigDir string

	// ConfigVolume is what PostgREST containers mount read-only at /etc/postgrest/projects
	// (POSTGREST_CONFIG_VOLUME, default launchdb_postgrest-projects). It must be the volume
	// mounted at ConfigDir in the manager; the proxy pins the same bind.
	ConfigVolume string

	// Network is the tenant network PostgREST containers join (POSTGREST_NETWORK, default
	// empty: the first network of the PgBouncer container, as the Node manager did).
	Network string

	// PgBouncerContainer is the PgBouncer container's name (PGBOUNCER_CONTAINER, default
	// launchdb-pgbouncer). The manager execs the pinned script in it as root.
	PgBouncerContainer string

	// PgBouncerINI is the pgbouncer.ini path inside that container (PGBOUNCER_INI, default
	// /etc/pgbouncer/pgbouncer.ini).
	PgBouncerINI string

	// SpawnReadyTimeout bounds the wait for a new or restarted container to answer HTTP on
	// port 3000 (SPAWN_READY_TIMEOUT, default 20s). platform-api gives up after 30 s.
	SpawnReadyTimeout time.Duration

	// ShutdownTimeout bounds how long SIGTERM waits for in-flight operations
	// (SHUTDOWN_TIMEOUT, default 30s).
	ShutdownTimeout time.Duration

	// CrashRecoveryWait is how long start-up waits before reconciling when the previous
	// process did not stop cleanly (CRASH_RECOVERY_WAIT, default 15s): Docker calls it had in
	// flight, such as a create, still land after it died. It must exceed the longest of them
	// (a Docker call is given 10 s).
	CrashRecoveryWait time.Duration
}

// EnvVar documents one environment variable the manager reads.
type EnvVar struct {
	Name     string
	Default  string
	Required bool
	Doc      string
}

// EnvVars lists the environment variables ConfigFromEnv reads, with their defaults.
func EnvVars() []EnvVar {
	return []EnvVar{
		{"PORT", "9000", false, "HTTP listen port"},
		{"INTERNAL_API_KEY", "", true, "shared secret expected in X-Internal-Key"},
		{"PLATFORM_DB_DSN", "", true, "platform database URL (libpq syntax)"},
		{"LAUNCHDB_MASTER_KEY", "", true, "base64 of the 32-byte AES-256-GCM key for secrets"},
		{"DOCKER_HOST", "tcp://docker-socket-proxy:2375", false,
			"Docker API (the sockpin proxy): tcp://host[:port] (port 2375 when none) or unix:///path"},
		{"DOMAIN", "", false, "passed to PostgREST containers as DOMAIN when set"},
		{"POSTGREST_IMAGE", "launchdb/postgrest:v1", false, "PostgREST image"},
		{"POSTGREST_CONFIG_DIR", "/etc/postgrest/projects", false,
			"directory the manager writes configs to"},
		{"POSTGREST_CONFIG_VOLUME", "launchdb_postgrest-projects", false,
			"volume PostgREST containers mount at /etc/postgrest/projects"},
		{"POSTGREST_NETWORK", "", false,
			"tenant network (empty: first network of the PgBouncer container)"},
		{"PGBOUNCER_CONTAINER", "launchdb-pgbouncer", false, "PgBouncer container name"},
		{"PGBOUNCER_INI", "/etc/pgbouncer/pgbouncer.ini", false,
			"pgbouncer.ini path inside the PgBouncer container"},
		{"SPAWN_READY_TIMEOUT", "20s", false,
			"how long spawn waits for a container to answer on :3000"},
		{"SHUTDOWN_TIMEOUT", "30s", false, "how long SIGTERM waits for in-flight operations"},
		{"CRASH_RECOVERY_WAIT", "15s", false,
			"after an unclean stop, how long start-up waits before reconciling"},
	}
}

var containerNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ConfigFromEnv reads the configuration from getenv: parse, apply defaults, validate. The
// error lists every missing or malformed variable, never a secret value.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	get := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		for _, e := range EnvVars() {
			if e.Name == name {
				return e.Default
			}
		}
		return ""
	}
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}

	var missing []string
	for _, e := range EnvVars() {
		if e.Required && getenv(e.Name) == "" {
			missing = append(missing, e.Name)
		}
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("missing required environment variables: %s",
			strings.Join(missing, ", ")))
	}

	cfg := Config{
		InternalAPIKey:     getenv("INTERNAL_API_KEY"),
		PlatformDSN:        getenv("PLATFORM_DB_DSN"),
		DockerHost:         get("DOCKER_HOST"),
		Domain:             getenv("DOMAIN"),
		Image:              get("POSTGREST_IMAGE"),
		ConfigDir:          get("POSTGREST_CONFIG_DIR"),
		ConfigVolume:       get("POSTGREST_CONFIG_VOLUME"),
		Network:            getenv("POSTGREST_NETWORK"),
		PgBouncerContainer: get("PGBOUNCER_CONTAINER"),
		PgBouncerINI:       get("PGBOUNCER_INI"),
	}

	port, err := strconv.Atoi(get("PORT"))
	if err != nil || port < 1 || port > 65535 {
		bad("PORT", "want a port number 1-65535, got %q", get("PORT"))
	}
	cfg.Port = port

	if cfg.PlatformDSN != "" {
		if _, err := pgxpool.ParseConfig(cfg.PlatformDSN); err != nil {
			// The parser's message may quote the DSN; it must not reach a log.
			bad("PLATFORM_DB_DSN", "not a valid PostgreSQL connection string")
		}
	}
	if k := getenv("LAUNCHDB_MASTER_KEY"); k != "" {
		key, err := ParseMasterKey(k)
		if err != nil {
			bad("LAUNCHDB_MASTER_KEY", "%v", err)
		}
		cfg.MasterKey = key
	}
	if host, err := checkDockerHost(cfg.DockerHost); err != nil {
		bad("DOCKER_HOST", "%v", err)
	} else {
		cfg.DockerHost = host
	}
	if _, err := reference.ParseNormalizedNamed(cfg.Image); err != nil {
		bad("POSTGREST_IMAGE", "not an image reference: %q", cfg.Image)
	}
	if !path.IsAbs(cfg.ConfigDir) {
		bad("POSTGREST_CONFIG_DIR", "want an absolute path, got %q", cfg.ConfigDir)
	}
	if cfg.ConfigVolume == "" || strings.Contains(cfg.ConfigVolume, ":") {
		bad("POSTGREST_CONFIG_VOLUME",
			"want a volume name or absolute host path without ':', got %q", cfg.ConfigVolume)
	}
	if cfg.Network != "" && !containerNamePattern.MatchString(cfg.Network) {
		bad("POSTGREST_NETWORK", "not a network name: %q", cfg.Network)
	}
	if !containerNamePattern.MatchString(cfg.PgBouncerContainer) {
		bad("PGBOUNCER_CONTAINER", "not a container name: %q", cfg.PgBouncerContainer)
	}
	if !path.IsAbs(cfg.PgBouncerINI) || path.Clean(cfg.PgBouncerINI) != cfg.PgBouncerINI {
		bad("PGBOUNCER_INI", "want a clean absolute path, got %q", cfg.PgBouncerINI)
	}
	cfg.SpawnReadyTimeout = parseDuration("SPAWN_READY_TIMEOUT", get("SPAWN_READY_TIMEOUT"), bad)
	cfg.ShutdownTimeout = parseDuration("SHUTDOWN_TIMEOUT", get("SHUTDOWN_TIMEOUT"), bad)
	cfg.CrashRecoveryWait = parseDuration("CRASH_RECOVERY_WAIT", get("CRASH_RECOVERY_WAIT"), bad)

	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

// parseDuration accepts a Go duration ("20s", "1m") or a whole number of seconds.
func parseDuration(name, v string, bad func(string, string, ...any)) time.Duration {
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.Atoi(v)
		if nerr != nil {
			bad(name, "want a duration such as 20s, got %q", v)
			return 0
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		bad(name, "want a positive duration, got %q", v)
	}
	return d
}

// checkDockerHost validates DOCKER_HOST and returns it with the port Docker's plain-HTTP
// default (2375) filled in when a tcp:// address names none, as the Node manager's client
// did.
func checkDockerHost(host string) (string, error) {
	u, err := url.Parse(host)
	if err != nil {
		return "", fmt.Errorf("not a URL: %q", host)
	}
	switch u.Scheme {
	case "tcp":
		if u.Hostname() == "" || u.Path != "" && u.Path != "/" {
			return "", fmt.Errorf("want tcp://host:port, got %q", host)
		}
		if u.Port() == "" {
			return "tcp://" + net.JoinHostPort(u.Hostname(), "2375"), nil
		}
	case "unix":
		if u.Path == "" {
			return "", fmt.Errorf("want unix:///path, got %q", host)
		}
	default:
		return "", fmt.Errorf("want a tcp:// or unix:// URL, got %q", host)
	}
	return host, nil
}
