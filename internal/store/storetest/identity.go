package storetest

import (
	"context"
	"testing"

	"gpubroker/internal/store"
)

// identified is what a SQL store adds for the server's start-up checks:
// an identity kept with the data, and a check that writes are taken.
type identified interface {
	StoreID(ctx context.Context) (string, error)
	SetStoreID(ctx context.Context, id string) (string, error)
	CheckWritable(ctx context.Context) error
}

// testIdentity: a new store has no identity; the first one given is kept
// (a second is ignored) and survives a reopen; a healthy store is
// writable.
func testIdentity(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	id, ok := s.(identified)
	if !ok {
		s.Close()
		t.Skipf("%T keeps no identity", s)
	}
	if got, err := id.StoreID(ctx(t)); err != nil || got != "" {
		t.Fatalf("StoreID of a new store = %q, %v; want \"\"", got, err)
	}
	if got, err := id.SetStoreID(ctx(t), "first"); err != nil || got != "first" {
		t.Fatalf("SetStoreID(first) = %q, %v", got, err)
	}
	if got, err := id.SetStoreID(ctx(t), "second"); err != nil || got != "first" {
		t.Fatalf("SetStoreID(second) = %q, %v; want the first kept", got, err)
	}
	if err := id.CheckWritable(ctx(t)); err != nil {
		t.Errorf("CheckWritable: %v", err)
	}
	s.Close()
	s = openClosed(t, open)
	if got, err := s.(identified).StoreID(ctx(t)); err != nil || got != "first" {
		t.Errorf("StoreID after reopening = %q, %v; want first", got, err)
	}
}
