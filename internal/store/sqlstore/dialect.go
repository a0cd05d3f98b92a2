package sqlstore

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// Dialect is what a SQL database does its own way. The zero value of an
// optional field means "nothing to do".
type Dialect struct {
	// Name starts every error message ("sqlite: job 7: not found").
	Name string
	// Numbered: placeholders are $1, $2, ... (PostgreSQL), not ?.
	Numbered bool
	// Written is the SQL expression a write sets jobs.written to (the
	// driver's store.Cursor bookkeeping); WriteMark, when set, gives its
	// arguments in a write transaction.
	Written   string
	WriteMark func(ctx context.Context, tx *sql.Tx) ([]any, error)
	// LockFleets, run first in PutFleet's transaction, makes writers of
	// fleet versions take turns (SQLite's writers already do).
	LockFleets string
	// ByteOrder follows a text column in ORDER BY to compare bytes, as
	// SQLite always does (PostgreSQL: ` COLLATE "C"`).
	ByteOrder string
	// MigrateLock, run first in the migrating transaction, keeps a
	// second process from migrating at the same time.
	MigrateLock string
	// SchemaTable creates the schema_migrations table if it is missing;
	// RecordVersion records one version in it, with two arguments: the
	// version and the time applied in Unix nanoseconds.
	SchemaTable, RecordVersion string
}

// Bind rewrites query's ? placeholders for d. Queries of this package
// never hold a ? in a literal.
func (d Dialect) Bind(query string) string {
	if !d.Numbered || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
