package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Step is a migration written in Go (a backfill), run in the migrating
// transaction right after the SQL migration of the same version.
type Step func(ctx context.Context, tx *sql.Tx, d Dialect) error

// Migrate brings the schema of db up to date in one transaction:
// migrations[i] is version i+1 (append only; never edit one that has
// shipped), steps[v] runs after version v's SQL, and schema_migrations
// records each version applied. A schema newer than migrations is refused.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, migrations []string, steps map[int]Step) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{d.MigrateLock, d.SchemaTable} {
		if q == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return err
	}
	if have > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this binary knows (%d)", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if step := steps[v]; step != nil {
			if err := step(ctx, tx, d); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
		}
		if _, err := tx.ExecContext(ctx, d.Bind(d.RecordVersion), v, time.Now().UnixNano()); err != nil {
			return err
		}
	}
	return tx.Commit()
}
