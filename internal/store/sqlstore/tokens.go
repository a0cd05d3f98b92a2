package sqlstore

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"gpubroker/internal/store"
)

// TokenLife adds to the tokens table when a token expires, was revoked and
// was last used (Unix nanoseconds, 0: never; tokens of older stores get 0,
// so they keep working), and the keys table of SharedKey, in SQL both
// engines take. It is part of each driver's migrations, so it is shipped
// schema: never edit it; change the tables with a new migration.
const TokenLife = `ALTER TABLE tokens ADD COLUMN expires BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE tokens ADD COLUMN revoked BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE tokens ADD COLUMN last_used BIGINT NOT NULL DEFAULT 0;
	CREATE TABLE keys (
		name  TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);`

// CreateToken implements store.Store.
func (db *DB) CreateToken(ctx context.Context, t store.Token) error {
	if err := checkToken(t); err != nil {
		return db.errorf("create token: %w", err)
	}
	if t.Created.IsZero() {
		t.Created = time.Now()
	}
	res, err := db.w.ExecContext(ctx, db.d.Bind(`INSERT INTO tokens (id, hash, team, role, name, created, expires, revoked, last_used)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		t.ID, t.Hash, t.Team, t.Role, t.Name, t.Created.UTC().UnixNano(), nanos(t.Expires), nanos(t.Revoked), nanos(t.LastUsed))
	if err != nil {
		return db.errorf("create token %s: %w", t.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return db.errorf("create token %s: %w: the id or hash exists", t.ID, store.ErrConflict)
	}
	return nil
}

func checkToken(t store.Token) error {
	if t.ID == "" || t.Hash == "" {
		return fmt.Errorf("%w: token id and hash are required", store.ErrInvalid)
	}
	switch t.Role {
	case "admin", "member", "viewer", "metrics":
		return nil
	}
	return fmt.Errorf("%w: token role %q; use admin, member, viewer or metrics", store.ErrInvalid, t.Role)
}

const tokenCols = `id, hash, team, role, name, created, expires, revoked, last_used`

func scanToken(r Scanner) (store.Token, error) {
	var t store.Token
	var created, expires, revoked, used int64
	err := r.Scan(&t.ID, &t.Hash, &t.Team, &t.Role, &t.Name, &created, &expires, &revoked, &used)
	t.Created = fromNanos(created)
	t.Expires, t.Revoked, t.LastUsed = orZero(expires), orZero(revoked), orZero(used)
	return t, err
}

// orZero is fromNanos, but the zero time for 0 (never).
func orZero(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return fromNanos(ns)
}

// TokenByHash implements store.Store.
func (db *DB) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	t, err := scanToken(db.queryRow(ctx, db.r, `SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Token{}, db.errorf("token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, db.errorf("token: %w", err)
	}
	return t, nil
}

// ListTokens implements store.Store, in ID order (of bytes).
func (db *DB) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY id`+db.d.ByteOrder)
	if err != nil {
		return nil, db.errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, db.errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, db.errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken implements store.Store in one statement: the first
// revocation time stays.
func (db *DB) RevokeToken(ctx context.Context, id string, at time.Time) (store.Token, error) {
	if at.IsZero() {
		at = time.Now()
	}
	t, err := scanToken(db.queryRow(ctx, db.w, `UPDATE tokens SET revoked = CASE WHEN revoked = 0 THEN ? ELSE revoked END
		WHERE id = ? RETURNING `+tokenCols, at.UTC().UnixNano(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Token{}, db.errorf("revoke token %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, db.errorf("revoke token %q: %w", id, err)
	}
	return t, nil
}

// TouchToken implements store.Store.
func (db *DB) TouchToken(ctx context.Context, id string, at time.Time) error {
	ns := at.UTC().UnixNano()
	var n int
	err := db.queryRow(ctx, db.w, `UPDATE tokens SET last_used = CASE WHEN last_used < ? THEN ? ELSE last_used END
		WHERE id = ? RETURNING 1`, ns, ns, id).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return db.errorf("touch token %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return db.errorf("touch token %q: %w", id, err)
	}
	return nil
}

// SharedKey implements store.Store: insert unless present, then read
// what won (this process's fresh bytes or another's).
func (db *DB) SharedKey(ctx context.Context, name string, fresh []byte) ([]byte, error) {
	if len(fresh) == 0 || name == "" {
		return nil, db.errorf("shared key %q: %w: a name and fresh bytes are required", name, store.ErrInvalid)
	}
	if _, err := db.w.ExecContext(ctx, db.d.Bind(`INSERT INTO keys (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING`),
		name, base64.StdEncoding.EncodeToString(fresh)); err != nil {
		return nil, db.errorf("shared key %q: %w", name, err)
	}
	var v string
	if err := db.queryRow(ctx, db.w, `SELECT value FROM keys WHERE name = ?`, name).Scan(&v); err != nil {
		return nil, db.errorf("shared key %q: %w", name, err)
	}
	key, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(key) == 0 {
		return nil, db.errorf("shared key %q: the stored value is not base64 (%v); delete its row of the keys table to make a new one", name, err)
	}
	return key, nil
}
