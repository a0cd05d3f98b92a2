package sqlstore

import (
	"context"
	"database/sql"
	"errors"
)

// The store's identity (read by the server at start, see
// server.checkStoreIdentity) lives in the keys table of SharedKey
// (TokenLife). storeIDSetting names its row; its value is the identity
// itself, not base64 as SharedKey's are.
const storeIDSetting = "store_id"

// StoreID returns the store's identity: a random value given once
// (SetStoreID) and kept with the data, so that whoever remembers it can
// tell this database from an empty or another one. "" when it has none
// yet (a new database, or one from before identities).
func (db *DB) StoreID(ctx context.Context) (string, error) {
	var v string
	err := db.queryRow(ctx, db.r, `SELECT value FROM keys WHERE name = ?`, storeIDSetting).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", db.errorf("store id: %w", err)
	}
	return v, nil
}

// SetStoreID gives the store the identity id unless it has one already,
// and returns the one it keeps.
func (db *DB) SetStoreID(ctx context.Context, id string) (string, error) {
	_, err := db.w.ExecContext(ctx, db.d.Bind(`INSERT INTO keys (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO NOTHING`), storeIDSetting, id)
	if err != nil {
		return "", db.errorf("store id: %w", err)
	}
	var v string
	if err := db.queryRow(ctx, db.w, `SELECT value FROM keys WHERE name = ?`, storeIDSetting).Scan(&v); err != nil {
		return "", db.errorf("store id: %w", err)
	}
	return v, nil
}

// CheckWritable reports whether the store takes writes now: it opens a
// write transaction and runs an update that changes no row, then rolls
// back, so a read-only file, a read-only transaction default or a
// database that refuses connections fails without anything written.
func (db *DB) CheckWritable(ctx context.Context) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return db.errorf("not writable: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, db.d.Bind(`UPDATE keys SET value = value WHERE name = ?`), ""); err != nil {
		return db.errorf("not writable: %w", err)
	}
	return nil
}
