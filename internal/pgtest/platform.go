package pgtest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ManagerRole is the manager's read-only database role.
const ManagerRole = "postgrest_manager_ro"

// ManagerPassword is the password CreatePlatformSchema gives ManagerRole.
const ManagerPassword = "manager-test-password"

// Secret types platform-api writes and the manager reads.
const (
	SecretJWT        = "jwt_secret"
	SecretDBPassword = "db_password"
)

// OwnerEmail is the owner every seeded project belongs to.
const OwnerEmail = "owner@sockpin.test"

// platformSchema is the part of platform-api's 01_platform_schema.sql and
// 04_postgrest_manager_role.sql the manager depends on.
const platformSchema = `
CREATE SCHEMA IF NOT EXISTS platform;

CREATE TABLE IF NOT EXISTS platform.owners (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	email text NOT NULL UNIQUE,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS platform.projects (
	id text PRIMARY KEY,
	name text NOT NULL,
	display_name text,
	owner_id uuid NOT NULL REFERENCES platform.owners (id),
	status text NOT NULL DEFAULT 'provisioning'
		CHECK (status IN ('provisioning', 'active', 'suspended', 'failed', 'deleted')),
	region text DEFAULT 'default',
	db_name text NOT NULL UNIQUE,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	last_activity_at timestamptz,
	metadata jsonb DEFAULT '{}'::jsonb
);

CREATE OR REPLACE FUNCTION platform.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	NEW.updated_at = now();
	RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER projects_set_updated_at
	BEFORE UPDATE ON platform.projects
	FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();

CREATE TABLE IF NOT EXISTS platform.secrets (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	project_id text NOT NULL REFERENCES platform.projects (id) ON DELETE CASCADE,
	secret_type text NOT NULL,
	encrypted_value bytea NOT NULL,
	key_version integer NOT NULL DEFAULT 1,
	created_at timestamptz NOT NULL DEFAULT now(),
	rotated_at timestamptz,
	expires_at timestamptz,
	UNIQUE (project_id, secret_type, key_version)
);

CREATE INDEX IF NOT EXISTS secrets_project_type_version_idx
	ON platform.secrets (project_id, secret_type, key_version DESC);

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '` + ManagerRole + `') THEN
		CREATE ROLE ` + ManagerRole + ` LOGIN;
	END IF;
END
$$;
ALTER ROLE ` + ManagerRole + ` LOGIN PASSWORD '` + ManagerPassword + `';
GRANT USAGE ON SCHEMA platform TO ` + ManagerRole + `;
GRANT SELECT ON platform.projects TO ` + ManagerRole + `;
GRANT SELECT (project_id, secret_type, encrypted_value, key_version)
	ON platform.secrets TO ` + ManagerRole + `;
`

// CreatePlatformSchema creates, in the database dsn names, schema platform
// with tables owners, projects and secrets as platform-api defines them,
// and role ManagerRole (password ManagerPassword) with the manager's
// grants: USAGE on the schema, SELECT on projects, and SELECT on the
// secrets columns project_id, secret_type, encrypted_value, key_version.
// Running it again is harmless.
func CreatePlatformSchema(ctx context.Context, dsn string) error {
	return withConn(ctx, dsn, func(conn *pgx.Conn) error {
		// Without arguments Exec uses the simple protocol: several statements.
		if _, err := conn.Exec(ctx, platformSchema); err != nil {
			return fmt.Errorf("creating platform schema: %w", err)
		}
		return nil
	})
}

// Project is a row of platform.projects with its two secrets in plaintext.
type Project struct {
	ID string
	// DBName defaults to ID, as platform-api inserts it.
	DBName string
	// Status defaults to "active".
	Status string
	// JWTSecret and DBPassword are stored encrypted with key_version 1; an
	// empty one is not stored (use SetSecret to store an empty plaintext).
	JWTSecret  string
	DBPassword string
}

// SeedProject inserts p, owned by OwnerEmail, and its secrets encrypted
// with key.
func SeedProject(ctx context.Context, dsn string, key []byte, p Project) error {
	if p.DBName == "" {
		p.DBName = p.ID
	}
	if p.Status == "" {
		p.Status = "active"
	}
	return withConn(ctx, dsn, func(conn *pgx.Conn) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		_, err = tx.Exec(ctx, `
			WITH owner AS (
				INSERT INTO platform.owners (email) VALUES ($5)
				ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email
				RETURNING id
			)
			INSERT INTO platform.projects (id, name, owner_id, status, db_name)
			SELECT $1::text, $2::text, owner.id, $3::text, $4::text FROM owner`,
			p.ID, p.ID, p.Status, p.DBName, OwnerEmail)
		if err != nil {
			return fmt.Errorf("inserting project %q: %w", p.ID, err)
		}
		for _, s := range []struct{ typ, value string }{
			{SecretJWT, p.JWTSecret}, {SecretDBPassword, p.DBPassword},
		} {
			if s.value == "" {
				continue
			}
			if err := insertSecret(ctx, tx, p.ID, s.typ, Encrypt(key, s.value)); err != nil {
				return err
			}
		}
		return tx.Commit(ctx)
	})
}

// SetSecret stores plaintext, encrypted with key, as a new version of the
// project's secret (one above the newest, or 1).
func SetSecret(ctx context.Context, dsn string, key []byte, projectID, secretType,
	plaintext string,
) error {
	return SetSecretBlob(ctx, dsn, projectID, secretType, Encrypt(key, plaintext))
}

// SetSecretBlob stores blob as is as a new version of the project's secret,
// for tests of blobs that are short, tampered with or sealed with another
// key.
func SetSecretBlob(ctx context.Context, dsn, projectID, secretType string, blob []byte) error {
	return withConn(ctx, dsn, func(conn *pgx.Conn) error {
		return insertSecret(ctx, conn, projectID, secretType, blob)
	})
}

// execer is what pgx.Conn and pgx.Tx have in common here.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func insertSecret(ctx context.Context, db execer, projectID, secretType string, blob []byte) error {
	_, err := db.Exec(ctx, `
		INSERT INTO platform.secrets (project_id, secret_type, encrypted_value, key_version)
		SELECT $1::text, $2::text, $3::bytea, COALESCE(MAX(key_version), 0) + 1
		FROM platform.secrets WHERE project_id = $1 AND secret_type = $2`,
		projectID, secretType, blob)
	if err != nil {
		return fmt.Errorf("inserting %s of %q: %w", secretType, projectID, err)
	}
	return nil
}

// SetStatus sets the project's status.
func SetStatus(ctx context.Context, dsn, projectID, status string) error {
	return withConn(ctx, dsn, func(conn *pgx.Conn) error {
		tag, err := conn.Exec(ctx, `UPDATE platform.projects SET status = $2 WHERE id = $1`,
			projectID, status)
		if err != nil {
			return fmt.Errorf("setting status of %q to %q: %w", projectID, status, err)
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("setting status of %q: no such project", projectID)
		}
		return nil
	})
}

func withConn(ctx context.Context, dsn string, f func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connecting to the platform database: %w", err)
	}
	defer conn.Close(ctx)
	return f(conn)
}
