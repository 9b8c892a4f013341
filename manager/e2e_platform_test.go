package manager

import (
	"context"
	"testing"
	"time"

	"github.com/launchdb/sockpin/internal/pgtest"
)

// pgPlatform is the platform database of the end-to-end tests: a throwaway PostgreSQL 15
// cluster with platform-api's schema, read by the manager as its read-only role.
type pgPlatform struct {
	*PlatformDB
	cluster *pgtest.Cluster
	admin   string // superuser DSN, for seeding
	dsn     string // the manager's DSN
}

func newE2EPlatform(t *testing.T) *pgPlatform {
	t.Helper()
	c := pgtest.Start(t)
	admin := c.DSN(pgtest.PlatformDB)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pgtest.CreatePlatformSchema(ctx, admin); err != nil {
		t.Fatal(err)
	}
	p := &pgPlatform{cluster: c, admin: admin, dsn: c.ManagerDSN(pgtest.PlatformDB)}
	db, err := OpenPlatformDB(p.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	p.PlatformDB = db
	return p
}

func (p *pgPlatform) seed(t *testing.T, id, status, jwt, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := pgtest.SeedProject(ctx, p.admin, pgtest.MasterKey(), pgtest.Project{
		ID: id, Status: status, JWTSecret: jwt, DBPassword: password})
	if err != nil {
		t.Fatal(err)
	}
}

func (p *pgPlatform) rotate(t *testing.T, id, secretType, plaintext string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pgtest.SetSecret(ctx, p.admin, pgtest.MasterKey(), id, secretType,
		plaintext); err != nil {
		t.Fatal(err)
	}
}

func (p *pgPlatform) stop(t *testing.T)  { p.cluster.Stop(t) }
func (p *pgPlatform) start(t *testing.T) { p.cluster.Start(t) }
