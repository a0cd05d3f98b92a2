package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"gpubroker/internal/store"
)

// StoreIDFile, in the state directory, names the store the directory's
// server last ran on (the store's own identity, kept in its settings).
const StoreIDFile = "store.id"

// identifiedStore keeps an identity with its data and can tell whether
// it takes writes (the SQL stores: sqlstore.DB).
type identifiedStore interface {
	StoreID(ctx context.Context) (string, error)
	SetStoreID(ctx context.Context, id string) (string, error)
	CheckWritable(ctx context.Context) error
}

// ErrStoreReplaced is what New returns when the state directory names a
// store other than the one given: an empty database where one with data
// was (a zero-byte or deleted file, a new PostgreSQL schema), or another
// database altogether.
var ErrStoreReplaced = errors.New("the store is not the one this state directory last used")

// checkStoreIdentity refuses to start on a store other than the one the
// state directory remembers, before anything is written to it: on an
// empty database the server would write a new admin token and run with
// every job gone, without a word. The first start (no StoreIDFile yet,
// or a store from before identities) gives the store an identity and
// remembers it.
func checkStoreIdentity(ctx context.Context, st store.Store, stateDir string) error {
	ids, ok := st.(identifiedStore)
	if !ok || stateDir == "" {
		return nil
	}
	if err := ids.CheckWritable(ctx); err != nil {
		return fmt.Errorf("server: the store does not take writes (a read-only file or directory, a "+
			"read-only PostgreSQL replica or role?): %w", err)
	}
	have, err := ids.StoreID(ctx)
	if err != nil {
		return fmt.Errorf("server: reading the store's identity: %w", err)
	}
	path := filepath.Join(stateDir, StoreIDFile)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("server: reading %s: %w", path, err)
	}
	want := strings.TrimSpace(string(b))
	switch {
	case want != "" && have == "":
		return fmt.Errorf("%w: %s names store %s, but this store is new or empty (a zero-byte, deleted or "+
			"replaced database file, or another database). Starting on it would write a new admin token and "+
			"leave every job behind. Put the right database back (or give it with --store); to start afresh "+
			"on purpose, remove %s", ErrStoreReplaced, path, want, path)
	case want != "" && have != want:
		return fmt.Errorf("%w: %s names store %s, but this store is %s. Give the store this directory used "+
			"(--store), or another --state-dir for this one; to move this directory to this store on purpose, "+
			"remove %s", ErrStoreReplaced, path, want, have, path)
	case want != "":
		return nil
	}
	if have == "" {
		if have, err = ids.SetStoreID(ctx, randomID("store-")); err != nil {
			return fmt.Errorf("server: giving the store an identity: %w", err)
		}
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("server: creating the state directory: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(have+"\n"), 0o600); err != nil {
		return fmt.Errorf("server: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("server: writing %s: %w", path, err)
	}
	return nil
}
