// Package pgtest runs a throwaway PostgreSQL 15 cluster for tests and fills
// it with LaunchDB's platform schema: projects, encrypted secrets (in
// platform-api's AES-256-GCM format) and the manager's read-only role.
//
// The cluster runs as the OS user postgres when the test runs as root
// (initdb refuses root), listens on 127.0.0.1 at a free port with password
// (SCRAM) authentication and on a unix socket in its own temporary
// directory, and is stopped and removed on cleanup. With CI=true missing
// PostgreSQL binaries fail the test; otherwise they skip it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir holds the PostgreSQL 15 server binaries.
const BinDir = "/usr/lib/postgresql/15/bin"

// SuperUser is the cluster's superuser.
const SuperUser = "postgres"

// PlatformDB is the database Start creates for the platform schema.
const PlatformDB = "platform"

// Cluster is a running throwaway PostgreSQL cluster.
type Cluster struct {
	// Host and Port are the TCP address, 127.0.0.1 and a free port.
	Host string
	Port int
	// SocketDir holds the unix socket (.s.PGSQL.<Port>).
	SocketDir string
	// DataDir is the cluster's data directory.
	DataDir string

	binDir   string
	dir      string
	password string
	asUser   []string // command prefix that runs a program as the postgres user
	running  bool
}

// Start initialises and starts a cluster with database PlatformDB, stopped
// and removed on cleanup.
func Start(t testing.TB) *Cluster {
	t.Helper()
	return start(t, BinDir)
}

func start(t testing.TB, binDir string) *Cluster {
	t.Helper()
	for _, bin := range []string{"initdb", "pg_ctl"} {
		if _, err := os.Stat(filepath.Join(binDir, bin)); err != nil {
			unavailable(t, "PostgreSQL 15 binaries not usable in %s: %v", binDir, err)
		}
	}
	c := &Cluster{Host: "127.0.0.1", Port: freePort(t), binDir: binDir, password: randomHex(16)}
	uid, gid := c.serverUser(t)

	c.sweep()
	// t.TempDir is root-only (0700); the server needs a directory it owns.
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		t.Fatalf("creating cluster directory: %v", err)
	}
	owner := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), owner, 0o644); err != nil {
		t.Fatalf("writing owner file: %v", err)
	}
	c.dir, c.DataDir, c.SocketDir = dir, filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	t.Cleanup(func() { c.cleanup(t) })
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		t.Fatalf("writing password file: %v", err)
	}
	if err := os.Mkdir(c.SocketDir, 0o700); err != nil {
		t.Fatalf("creating socket directory: %v", err)
	}
	for _, p := range []string{dir, pwfile, c.SocketDir} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatalf("handing %s to the postgres user: %v", p, err)
		}
	}

	c.run(t, "initdb", "-D", c.DataDir, "-U", SuperUser, "--pwfile="+pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C",
		"--no-sync", "--no-instructions")
	c.configure(t)
	c.Start(t)
	c.CreateDatabase(t, PlatformDB)
	return c
}

// dirPrefix names cluster directories in the system's temporary directory.
const dirPrefix = "sockpin-pg-"

// sweep stops and removes the clusters of test processes that died before
// their cleanup ran (a test timeout, a kill), found by the PID each cluster
// directory records.
func (c *Cluster) sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(string(data))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		stale := &Cluster{binDir: c.binDir, dir: dir, asUser: c.asUser}
		stale.command("pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "-w",
			"stop").Run()
		os.RemoveAll(dir)
	}
}

// serverUser returns the UID and GID the server runs as: postgres when the
// test runs as root, else the test's own user.
func (c *Cluster) serverUser(t testing.TB) (int, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		return os.Geteuid(), os.Getegid()
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		unavailable(t, "running as root and no postgres OS user to run the server: %v", err)
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		unavailable(t, "running as root and no runuser to switch to postgres: %v", err)
	}
	c.asUser = []string{"runuser", "-u", "postgres", "--"}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

// configure appends the test settings: TCP on 127.0.0.1 only, the socket in
// the cluster's directory, and durability off for speed.
func (c *Cluster) configure(t testing.TB) {
	t.Helper()
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 40
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
`, c.Port, c.SocketDir)
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("opening postgresql.conf: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteString(conf); err != nil {
		t.Fatalf("writing postgresql.conf: %v", err)
	}
}

// run runs a PostgreSQL program as the server's user and fails the test if
// it fails.
func (c *Cluster) run(t testing.TB, program string, args ...string) {
	t.Helper()
	if out, err := c.command(program, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", program, strings.Join(args, " "), err, out)
	}
}

func (c *Cluster) command(program string, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, c.asUser...), filepath.Join(c.binDir, program)),
		args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	// The server's user may not be able to enter the test's directory.
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "LC_ALL=C"}
	return cmd
}

// Start starts the cluster again after Stop, on the same port and socket,
// with the same data.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if c.running {
		return
	}
	c.run(t, "pg_ctl", "-D", c.DataDir, "-l", filepath.Join(c.dir, "server.log"), "-w",
		"-t", "30", "start")
	c.running = true
}

// Stop stops the cluster (fast shutdown: open connections are cut), for
// tests of a database that goes away.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if !c.running {
		return
	}
	c.run(t, "pg_ctl", "-D", c.DataDir, "-m", "fast", "-w", "-t", "30", "stop")
	c.running = false
}

func (c *Cluster) cleanup(t testing.TB) {
	// A failed start can leave a server behind: its pid file tells.
	_, pidErr := os.Stat(filepath.Join(c.DataDir, "postmaster.pid"))
	if c.running || pidErr == nil {
		out, err := c.command("pg_ctl", "-D", c.DataDir, "-m", "immediate", "-w", "stop").
			CombinedOutput()
		if err != nil && c.running {
			t.Errorf("stopping PostgreSQL: %v\n%s", err, out)
		}
		c.running = false
	}
	if t.Failed() {
		if log, err := os.ReadFile(filepath.Join(c.dir, "server.log")); err == nil {
			t.Logf("PostgreSQL server log:\n%s", log)
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		t.Errorf("removing cluster directory: %v", err)
	}
}

// DSN returns a postgres:// URL for the superuser over TCP to dbname.
func (c *Cluster) DSN(dbname string) string {
	return c.UserDSN(SuperUser, c.password, dbname)
}

// ManagerDSN returns a postgres:// URL for ManagerRole (with
// ManagerPassword, both set by CreatePlatformSchema) over TCP to dbname.
func (c *Cluster) ManagerDSN(dbname string) string {
	return c.UserDSN(ManagerRole, ManagerPassword, dbname)
}

// UserDSN returns a postgres:// URL for user and password over TCP to
// dbname, without TLS.
func (c *Cluster) UserDSN(user, password, dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates database name.
func (c *Cluster) CreateDatabase(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatalf("connecting to create database %q: %v", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("creating database %q: %v", name, err)
	}
}

// unavailable fails the test under CI=true and skips it otherwise.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: missing infrastructure is a failure)", msg)
	}
	t.Skipf("%s (skipping; with CI=true this fails)", msg)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
