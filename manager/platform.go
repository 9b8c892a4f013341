package manager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Project is the part of a platform.projects row the manager reads.
type Project struct {
	ID     string
	DBName string
	Status string
}

// Secret types the manager reads from platform.secrets.
const (
	SecretJWT        = "jwt_secret"
	SecretDBPassword = "db_password"
)

// ErrNotFound reports that the platform database has no such project or secret.
var ErrNotFound = errors.New("not found")

// Platform is read access to the platform database.
type Platform interface {
	// Project returns the project row with the given ID, or ErrNotFound.
	Project(ctx context.Context, id string) (Project, error)
	// Secret returns the newest encrypted secret of a type, or ErrNotFound.
	Secret(ctx context.Context, projectID, secretType string) ([]byte, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
}

// Limits of the platform database client, as the Node manager had them, but explicit.
const (
	platformMaxConns       = 5
	platformIdleTimeout    = 30 * time.Second
	platformConnectTimeout = 5 * time.Second
	platformQueryTimeout   = 5 * time.Second
)

// PlatformDB is Platform over a pgx pool.
type PlatformDB struct {
	pool *pgxpool.Pool
}

// OpenPlatformDB returns a pool for dsn. It does not connect; the first query does.
//
// Queries use QueryExecModeExec (extended protocol, unnamed statements, nothing prepared),
// so they keep working if PgBouncer's platform pool is ever switched to transaction mode.
func OpenPlatformDB(dsn string) (*PlatformDB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("parsing PLATFORM_DB_DSN: not a valid connection string")
	}
	cfg.MaxConns = platformMaxConns
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = platformIdleTimeout
	cfg.ConnConfig.ConnectTimeout = platformConnectTimeout
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("creating platform database pool: %w", err)
	}
	return &PlatformDB{pool: pool}, nil
}

// Close closes the pool.
func (db *PlatformDB) Close() { db.pool.Close() }

// Project implements Platform.
func (db *PlatformDB) Project(ctx context.Context, id string) (Project, error) {
	ctx, cancel := context.WithTimeout(ctx, platformQueryTimeout)
	defer cancel()
	var p Project
	err := db.pool.QueryRow(ctx,
		`SELECT id, db_name, status FROM platform.projects WHERE id = $1`, id,
	).Scan(&p.ID, &p.DBName, &p.Status)
	if errors.Is(err, pgx.ErrNoRows) {
		return Project{}, ErrNotFound
	}
	if err != nil {
		return Project{}, fmt.Errorf("reading project: %w", err)
	}
	return p, nil
}

// Secret implements Platform.
func (db *PlatformDB) Secret(ctx context.Context, projectID, secretType string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, platformQueryTimeout)
	defer cancel()
	var blob []byte
	err := db.pool.QueryRow(ctx,
		`SELECT encrypted_value FROM platform.secrets
		 WHERE project_id = $1 AND secret_type = $2
		 ORDER BY key_version DESC LIMIT 1`, projectID, secretType,
	).Scan(&blob)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", secretType, err)
	}
	return blob, nil
}

// Ping implements Platform.
func (db *PlatformDB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, platformQueryTimeout)
	defer cancel()
	return db.pool.Ping(ctx)
}
