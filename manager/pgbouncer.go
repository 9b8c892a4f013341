package manager

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// PgBouncer operations understood by the script.
const (
	PgBouncerAdd    = "add"
	PgBouncerRemove = "remove"
)

//go:embed pgbouncer.sh
var pgBouncerScript string

// PgBouncerScript returns the constant POSIX sh script the manager runs inside the PgBouncer
// container to add or remove a project's [databases] line. It takes all variable input from
// its positional parameters, so the policy can pin the whole argv.
func PgBouncerScript() string { return pgBouncerScript }

// PgBouncerArgv returns the exec argv for one PgBouncer edit:
//
//	sh -c SCRIPT sockpin-pgbouncer OP PROJECT_ID DB_NAME INI_PATH
//
// op is PgBouncerAdd or PgBouncerRemove; projectID and dbName must match the project ID
// pattern (the script checks again); iniPath is PGBOUNCER_INI. For remove, dbName is not
// used by the script and the manager passes the project ID, which is what platform-api
// stores as db_name.
func PgBouncerArgv(op, projectID, dbName, iniPath string) []string {
	return []string{"sh", "-c", pgBouncerScript, "sockpin-pgbouncer",
		op, projectID, dbName, iniPath}
}

// Limits for one PgBouncer edit. The script waits up to about 10 s for its lock directory.
const (
	pgBouncerExecTimeout = 30 * time.Second
	pgBouncerOutputLimit = 64 << 10
)

// editPgBouncer runs the script with op for one project and reloads PgBouncer with SIGHUP
// when the file changed. It reports whether the file changed. Edits are serialised
// in-process; the script's lock directory covers anything else editing the file.
func (s *Service) editPgBouncer(ctx context.Context, op, projectID, dbName string) (bool, error) {
	s.pgBouncerMu.Lock()
	defer s.pgBouncerMu.Unlock()

	out, err := s.execPgBouncer(ctx, PgBouncerArgv(op, projectID, dbName, s.cfg.PgBouncerINI))
	if err != nil {
		return false, err
	}
	lines := strings.Fields(out)
	if len(lines) == 0 {
		return false, fmt.Errorf("script printed no result")
	}
	changed := lines[len(lines)-1] == "changed"
	if !changed {
		return false, nil
	}

	kctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	if err := s.docker.ContainerKill(kctx, s.cfg.PgBouncerContainer, "SIGHUP"); err != nil {
		return true, fmt.Errorf("reloading PgBouncer (SIGHUP to %s): %w",
			s.cfg.PgBouncerContainer, err)
	}
	return true, nil
}

// execPgBouncer runs argv as root in the PgBouncer container and returns its stdout. The
// result is judged by the exit code the daemon reports after the output stream ends.
func (s *Service) execPgBouncer(ctx context.Context, argv []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, pgBouncerExecTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	// Exactly what the policy pins: root, output attached, no stdin, no tty, no env.
	opts := container.ExecOptions{User: "root", AttachStdout: true, AttachStderr: true, Cmd: argv}
	created, err := s.docker.ContainerExecCreate(ctx, s.cfg.PgBouncerContainer, opts)
	if err != nil {
		return "", fmt.Errorf("creating exec in %s: %w", s.cfg.PgBouncerContainer, err)
	}
	resp, err := s.docker.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", fmt.Errorf("starting exec in %s: %w", s.cfg.PgBouncerContainer, err)
	}
	defer resp.Close()
	// Nothing is sent on stdin: half-close at once, as the docker CLI does, so no relay on
	// the way waits for the client's side of the stream.
	_ = resp.CloseWrite()
	if resp.Conn != nil {
		// The hijacked connection outlives the request context; bound it explicitly.
		_ = resp.Conn.SetDeadline(deadline)
	}
	stdout := &cappedBuffer{limit: pgBouncerOutputLimit}
	stderr := &cappedBuffer{limit: pgBouncerOutputLimit}
	if _, err := stdcopy.StdCopy(stdout, stderr, resp.Reader); err != nil {
		return "", fmt.Errorf("reading exec output from %s: %w", s.cfg.PgBouncerContainer, err)
	}

	code, err := s.execExitCode(ctx, created.ID)
	if err != nil {
		return "", err
	}
	if code != 0 {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return "", fmt.Errorf("command failed with exit code %d: %s", code, msg)
	}
	return stdout.String(), nil
}

// execExitCode waits briefly for the daemon to record the exit of an exec whose stream has
// ended, then returns its exit code.
func (s *Service) execExitCode(ctx context.Context, execID string) (int, error) {
	for {
		info, err := s.docker.ContainerExecInspect(ctx, execID)
		if err != nil {
			return 0, fmt.Errorf("inspecting exec in %s: %w", s.cfg.PgBouncerContainer, err)
		}
		if !info.Running {
			return info.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("exec in %s still running: %w",
				s.cfg.PgBouncerContainer, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cappedBuffer keeps the first limit bytes written to it and discards the rest, so a
// misbehaving exec cannot make the manager buffer without bound.
type cappedBuffer struct {
	bytes.Buffer
	limit int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}
