package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/jackc/pgx/v5"

	"github.com/launchdb/sockpin/internal/standin"
)

// pgPort names the socket file (.s.PGSQL.5432); the cluster listens on no TCP port.
const pgPort = 5432

// platformDB is a throwaway PostgreSQL reached only through a unix socket in a host
// directory, which the manager's container mounts.
type platformDB struct {
	socketDir string
	password  string // the superuser's
	about     string
	stop      func() error
}

// dsn returns the superuser's URL for dbname over the socket.
func (db *platformDB) dsn(dbname string) string {
	return fmt.Sprintf("postgres://postgres:%s@/%s?host=%s&port=%d&sslmode=disable",
		db.password, dbname, db.socketDir, pgPort)
}

// startLocalPostgres initialises and starts a cluster under dir with the server
// binaries in binDir. As root it runs them as the user postgres: initdb refuses root.
func startLocalPostgres(ctx context.Context, binDir, dir string) (*platformDB, error) {
	db := &platformDB{socketDir: filepath.Join(dir, "db"), password: randomString(24),
		about: "local binaries in " + binDir}
	data := filepath.Join(dir, "pgdata")
	pwfile := filepath.Join(dir, "pgpass")
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(pwfile, []byte(db.password+"\n"), 0o600); err != nil {
		return nil, err
	}
	for _, d := range []string{data, db.socketDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	// The manager (UID 1001 in its container) must reach the socket file.
	if err := os.Chmod(db.socketDir, 0o755); err != nil {
		return nil, err
	}
	if cred != nil {
		for _, path := range []string{data, db.socketDir, pwfile} {
			if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}

	initdb := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"), "-D", data,
		"-U", "postgres", "-A", "scram-sha-256", "--pwfile", pwfile, "-E", "UTF8",
		"--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}

	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	server := exec.Command(filepath.Join(binDir, "postgres"), "-D", data,
		"-k", db.socketDir, "-p", strconv.Itoa(pgPort), "-c", "listen_addresses=",
		"-c", "unix_socket_permissions=0777", "-c", "fsync=off")
	server.Dir = dir
	server.Stdout, server.Stderr = logFile, logFile
	// Its own process group keeps a terminal's Ctrl-C away from it, so the demo stops it
	// last, after the containers; Pdeathsig stops it if the demo itself is killed.
	server.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true,
		Pdeathsig: syscall.SIGTERM}
	if err := server.Start(); err != nil {
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- server.Wait() }()
	db.stop = func() error {
		server.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			server.Process.Kill()
			<-exited
		}
		return nil
	}
	if err := db.waitReady(ctx, exited); err != nil {
		db.stop()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return db, nil
}

// postgresCredential returns the user postgres when running as root, nil otherwise.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("running as root, and PostgreSQL refuses root, " +
			"but there is no user postgres to run it as")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// waitReady polls the server until it accepts a connection, for up to 30 s.
func (db *platformDB) waitReady(ctx context.Context, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, db.dsn("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgreSQL did not accept connections in 30 s: %w", err)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("postgres exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// startImagePostgres runs PostgreSQL from ref, the image, with its socket directory
// bind-mounted from dir. The container carries labels, so the sweep removes it.
func startImagePostgres(ctx context.Context, cli *client.Client, ref, dir string,
	labels map[string]string,
) (*platformDB, error) {
	db := &platformDB{socketDir: filepath.Join(dir, "db"), password: randomString(24),
		about: "image " + ref}
	if err := os.Mkdir(db.socketDir, 0o777); err != nil {
		return nil, err
	}
	if err := os.Chmod(db.socketDir, 0o777); err != nil {
		return nil, err
	}
	if _, err := cli.ImageInspect(ctx, ref); cerrdefs.IsNotFound(err) {
		body, err := cli.ImagePull(ctx, ref, image.PullOptions{})
		if err == nil {
			err = standin.ReadProgress(body)
			body.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("no PostgreSQL: no server binaries, and pulling %s "+
				"failed: %v", ref, firstLine(err.Error()))
		}
	}
	created, err := cli.ContainerCreate(ctx, &container.Config{
		Image:  ref,
		Env:    []string{"POSTGRES_PASSWORD=" + db.password},
		Cmd:    []string{"postgres", "-c", "listen_addresses=", "-c", "fsync=off"},
		Labels: labels,
	}, &container.HostConfig{
		Binds: []string{db.socketDir + ":/var/run/postgresql"},
	}, nil, nil, "sockpin-demo-postgres-"+labels[runLabel])
	if err != nil {
		return nil, fmt.Errorf("creating the PostgreSQL container: %w", err)
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return nil, fmt.Errorf("starting the PostgreSQL container: %w", err)
	}
	db.stop = func() error { return nil } // the sweep removes the container
	// The image's entrypoint runs a temporary server for its set-up first.
	if err := waitLog(ctx, cli, created.ID, "PostgreSQL init process complete"); err != nil {
		return nil, err
	}
	if err := db.waitReady(ctx, nil); err != nil {
		return nil, err
	}
	return db, nil
}

// waitLog waits up to a minute for text in a container's output.
func waitLog(ctx context.Context, cli *client.Client, id, text string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		logs, err := containerLogs(ctx, cli, id)
		if err != nil {
			return err
		}
		if strings.Contains(logs, text) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("container %.12s did not log %q within a minute", id, text)
}

// containerLogs returns a container's stdout and stderr so far.
func containerLogs(ctx context.Context, cli *client.Client, id string) (string, error) {
	r, err := cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true,
		ShowStderr: true})
	if err != nil {
		return "", fmt.Errorf("reading the logs of %.12s: %w", id, err)
	}
	defer r.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, r); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the logs of %.12s: %w", id, err)
	}
	return buf.String(), nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
