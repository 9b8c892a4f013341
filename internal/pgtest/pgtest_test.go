package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// fatalRecorder is a testing.TB that records Fatal and Skip instead of
// ending the real test.
type fatalRecorder struct {
	testing.TB
	fatal, skip string
}

func (r *fatalRecorder) Helper()        {}
func (r *fatalRecorder) Cleanup(func()) {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestStartWithoutBinaries(t *testing.T) {
	tests := []struct {
		name      string
		ci        string
		wantFatal bool
	}{
		{name: "ci-fails", ci: "true", wantFatal: true},
		{name: "local-skips", ci: "", wantFatal: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &fatalRecorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				start(r, filepath.Join(t.TempDir(), "no-such-bin"))
			}()
			<-done
			if got := r.fatal != ""; got != tt.wantFatal {
				t.Errorf("fatal: got %v (%q), want %v", got, r.fatal, tt.wantFatal)
			}
			if got := r.skip != ""; got == tt.wantFatal {
				t.Errorf("skip: got %v (%q), want %v", got, r.skip, !tt.wantFatal)
			}
			if msg := r.fatal + r.skip; !strings.Contains(msg, "PostgreSQL 15 binaries") {
				t.Errorf("message: got %q, want it to name the PostgreSQL binaries", msg)
			}
		})
	}
}

// managerQueries runs the manager's two queries as ManagerRole and returns
// the project's db_name and status and its newest secrets, decrypted.
func managerQueries(t *testing.T, ctx context.Context, dsn, id string) (string, string,
	map[string]string,
) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting as %s: %v", ManagerRole, err)
	}
	defer conn.Close(ctx)
	var gotID, dbName, status string
	err = conn.QueryRow(ctx, `SELECT id, db_name, status FROM platform.projects WHERE id = $1`,
		id).Scan(&gotID, &dbName, &status)
	if err != nil {
		t.Fatalf("project query: %v", err)
	}
	secrets := map[string]string{}
	for _, typ := range []string{SecretJWT, SecretDBPassword} {
		var blob []byte
		err := conn.QueryRow(ctx, `SELECT encrypted_value FROM platform.secrets
			WHERE project_id = $1 AND secret_type = $2 ORDER BY key_version DESC LIMIT 1`,
			id, typ).Scan(&blob)
		if err != nil {
			t.Fatalf("secret query for %s: %v", typ, err)
		}
		secrets[typ] = open(t, MasterKey(), blob)
	}
	return dbName, status, secrets
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func TestCluster(t *testing.T) {
	ctx := context.Background()
	var dir string
	var port int

	t.Run("lifecycle", func(t *testing.T) {
		c := Start(t)
		dir, port = filepath.Dir(c.DataDir), c.Port
		dsn := c.DSN(PlatformDB)
		for i := 0; i < 2; i++ {
			if err := CreatePlatformSchema(ctx, dsn); err != nil {
				t.Fatalf("CreatePlatformSchema (run %d): %v", i+1, err)
			}
		}
		id := "proj_0123456789abcdef"
		err := SeedProject(ctx, dsn, MasterKey(), Project{ID: id, JWTSecret: "jwt-1",
			DBPassword: "pw-1"})
		if err != nil {
			t.Fatalf("SeedProject: %v", err)
		}

		dbName, status, secrets := managerQueries(t, ctx, c.ManagerDSN(PlatformDB), id)
		if dbName != id || status != "active" {
			t.Errorf("project row: got db_name %q status %q, want %q and active", dbName,
				status, id)
		}
		if secrets[SecretJWT] != "jwt-1" || secrets[SecretDBPassword] != "pw-1" {
			t.Errorf("secrets: got %v, want jwt-1 and pw-1", secrets)
		}

		if err := SetSecret(ctx, dsn, MasterKey(), id, SecretJWT, "jwt-2"); err != nil {
			t.Fatalf("SetSecret: %v", err)
		}
		if err := SetStatus(ctx, dsn, id, "suspended"); err != nil {
			t.Fatalf("SetStatus: %v", err)
		}
		_, status, secrets = managerQueries(t, ctx, c.ManagerDSN(PlatformDB), id)
		if status != "suspended" || secrets[SecretJWT] != "jwt-2" {
			t.Errorf("after updates: got status %q, jwt %q; want suspended, jwt-2", status,
				secrets[SecretJWT])
		}

		t.Run("constraints", func(t *testing.T) { testConstraints(t, ctx, dsn, id) })
		t.Run("manager-grants", func(t *testing.T) { testGrants(t, ctx, c) })

		t.Run("stop-and-start", func(t *testing.T) {
			c.Stop(t)
			if conn, err := pgx.Connect(ctx, dsn); err == nil {
				conn.Close(ctx)
				t.Fatalf("connect while stopped: got success, want an error")
			}
			c.Start(t)
			_, status, _ := managerQueries(t, ctx, c.ManagerDSN(PlatformDB), id)
			if status != "suspended" {
				t.Errorf("status after restart: got %q, want the data kept (suspended)", status)
			}
		})
	})

	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory after cleanup: got %v, want it removed", err)
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		time.Second)
	if err == nil {
		conn.Close()
		t.Errorf("port %d after cleanup: got a listener, want the server gone", port)
	}
}

func testConstraints(t *testing.T, ctx context.Context, dsn, id string) {
	tests := []struct {
		name    string
		run     func() error
		wantErr string
	}{
		{name: "status-check", run: func() error { return SetStatus(ctx, dsn, id, "bogus") },
			wantErr: "23514"},
		{name: "unknown-project-status", run: func() error {
			return SetStatus(ctx, dsn, "proj_ffffffffffffffff", "active")
		}, wantErr: "no such project"},
		{name: "duplicate-project", run: func() error {
			return SeedProject(ctx, dsn, MasterKey(), Project{ID: id})
		}, wantErr: "23505"},
		{name: "secret-of-unknown-project", run: func() error {
			return SetSecretBlob(ctx, dsn, "proj_ffffffffffffffff", SecretJWT, []byte("x"))
		}, wantErr: "23503"},
		{name: "raw-blob-accepted", run: func() error {
			return SetSecretBlob(ctx, dsn, id, "anon_key", []byte("short"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			got := ""
			if err != nil {
				got = sqlState(err) + " " + err.Error()
			}
			if tt.wantErr == "" && err != nil || !strings.Contains(got, tt.wantErr) {
				t.Errorf("error: got %q, want %q", got, tt.wantErr)
			}
		})
	}
}

func testGrants(t *testing.T, ctx context.Context, c *Cluster) {
	tests := []struct {
		name      string
		dsn       string
		sql       string
		wantState string
	}{
		{name: "reads-projects", dsn: c.ManagerDSN(PlatformDB),
			sql: "SELECT count(*) FROM platform.projects"},
		{name: "reads-granted-secret-columns", dsn: c.ManagerDSN(PlatformDB),
			sql: "SELECT project_id, secret_type, encrypted_value, key_version " +
				"FROM platform.secrets"},
		{name: "no-other-secret-columns", dsn: c.ManagerDSN(PlatformDB),
			sql: "SELECT id FROM platform.secrets", wantState: "42501"},
		{name: "no-owners", dsn: c.ManagerDSN(PlatformDB),
			sql: "SELECT * FROM platform.owners", wantState: "42501"},
		{name: "no-writes", dsn: c.ManagerDSN(PlatformDB),
			sql: "DELETE FROM platform.projects", wantState: "42501"},
		{name: "wrong-password", dsn: c.UserDSN(ManagerRole, "wrong", PlatformDB),
			sql: "SELECT 1", wantState: "28P01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := pgx.Connect(ctx, tt.dsn)
			if err == nil {
				defer conn.Close(ctx)
				_, err = conn.Exec(ctx, tt.sql)
			}
			if got := sqlState(err); got != tt.wantState {
				t.Errorf("SQLSTATE: got %q (%v), want %q", got, err, tt.wantState)
			}
		})
	}
}

func TestStartSweepsClustersOfDeadProcesses(t *testing.T) {
	ctx := context.Background()
	orphan := Start(t)
	// Pretend its test process died before its cleanup: record the PID of a
	// process that has exited.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	pid := []byte(strconv.Itoa(gone.Process.Pid))
	if err := os.WriteFile(filepath.Join(orphan.dir, "owner.pid"), pid, 0o644); err != nil {
		t.Fatal(err)
	}

	Start(t)
	if _, err := os.Stat(orphan.dir); !os.IsNotExist(err) {
		t.Errorf("orphaned cluster directory: got %v, want it removed", err)
	}
	if conn, err := pgx.Connect(ctx, orphan.DSN(PlatformDB)); err == nil {
		conn.Close(ctx)
		t.Errorf("orphaned cluster: got a connection, want it stopped")
	}
	orphan.running = false
}
