package storetest

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/store"
)

// testTokenLife: expiry round-trips, revocation is seen by the next
// lookup and keeps its first time, last use only moves forward, and
// unknown IDs are ErrNotFound.
func testTokenLife(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	tok := store.Token{ID: "tok-e", Hash: "he", Team: "ml", Role: "member", Created: t0, Expires: t0.Add(24 * time.Hour)}
	if err := s.CreateToken(ctx(t), tok); err != nil {
		t.Fatal(err)
	}
	metrics := store.Token{ID: "tok-m", Hash: "hm", Team: "ops", Role: "metrics", Created: t0}
	if err := s.CreateToken(ctx(t), metrics); err != nil {
		t.Fatalf("CreateToken with role metrics: %v", err)
	}
	got, err := s.TokenByHash(ctx(t), "he")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(tok, got); d != "" {
		t.Errorf("TokenByHash of a token with an expiry (-want +got):\n%s", d)
	}
	if err := got.Usable(t0.Add(time.Hour)); err != nil {
		t.Errorf("Usable before expiry: %v", err)
	}
	if err := got.Usable(t0.Add(24 * time.Hour)); err == nil {
		t.Errorf("Usable at expiry: nil; want an error")
	}

	// Last use moves forward only.
	if err := s.TouchToken(ctx(t), "tok-e", t0.Add(2*time.Minute)); err != nil {
		t.Fatalf("TouchToken: %v", err)
	}
	if err := s.TouchToken(ctx(t), "tok-e", t0.Add(time.Minute)); err != nil {
		t.Fatalf("TouchToken earlier: %v", err)
	}
	if got, _ := s.TokenByHash(ctx(t), "he"); !got.LastUsed.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("LastUsed %v; want %v (an earlier touch is ignored)", got.LastUsed, t0.Add(2*time.Minute))
	}
	wantErr(t, "TouchToken of an unknown id", s.TouchToken(ctx(t), "nope", t0), store.ErrNotFound)

	// Revocation: seen at once, first time kept, listed.
	rev, err := s.RevokeToken(ctx(t), "tok-e", t0.Add(time.Hour))
	if err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if !rev.Revoked.Equal(t0.Add(time.Hour)) || rev.ID != "tok-e" || rev.Team != "ml" {
		t.Errorf("RevokeToken returned %+v", rev)
	}
	if again, err := s.RevokeToken(ctx(t), "tok-e", t0.Add(5*time.Hour)); err != nil || !again.Revoked.Equal(t0.Add(time.Hour)) {
		t.Errorf("RevokeToken again: %v at %v; want the first time %v", err, again.Revoked, t0.Add(time.Hour))
	}
	got, err = s.TokenByHash(ctx(t), "he")
	if err != nil || !got.Revoked.Equal(t0.Add(time.Hour)) || got.Usable(t0.Add(2*time.Hour)) == nil {
		t.Errorf("TokenByHash after revoke: %+v %v; want it revoked and unusable", got, err)
	}
	_, err = s.RevokeToken(ctx(t), "nope", t0)
	wantErr(t, "RevokeToken of an unknown id", err, store.ErrNotFound)
	list, err := s.ListTokens(ctx(t))
	if err != nil || len(list) != 2 || list[0].Revoked.IsZero() || !list[1].Revoked.IsZero() {
		t.Errorf("ListTokens after revoke: %+v %v; want tok-e revoked, tok-m not", list, err)
	}
}

// testSharedKey: the first fresh key is kept, by every caller, across
// reopening; concurrent first calls agree.
func testSharedKey(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	_, err := s.SharedKey(ctx(t), "csrf", nil)
	wantErr(t, "SharedKey with no fresh bytes", err, store.ErrInvalid)
	const n = 8
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], errs[i] = s.SharedKey(ctx(t), "csrf", []byte{byte(i + 1), 2, 3})
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || !bytes.Equal(keys[i], keys[0]) || len(keys[i]) != 3 {
			t.Errorf("SharedKey #%d: %x %v; want %x as every other caller", i, keys[i], errs[i], keys[0])
		}
	}
	other, err := s.SharedKey(ctx(t), "other", []byte("x"))
	if err != nil || string(other) != "x" {
		t.Errorf("SharedKey of another name: %q %v", other, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openClosed(t, open)
	again, err := s.SharedKey(ctx(t), "csrf", []byte("new"))
	if err != nil || !bytes.Equal(again, keys[0]) {
		t.Errorf("SharedKey after reopening: %x %v; want the first key %x", again, err, keys[0])
	}
}

// LegacyToken is a token as a store from before token expiry held it: a
// driver's upgrade test inserts it with the old schema's columns, opens
// the store and calls TokensAfterUpgrade.
var LegacyToken = store.Token{ID: "tok-old", Hash: "h-old", Team: "ml", Role: "member", Name: "ci", Created: time.Unix(0, 1).UTC()}

// TokensAfterUpgrade checks that LegacyToken still works after the
// upgrade (no expiry, not revoked, never used) and can be touched and
// revoked.
func TokensAfterUpgrade(t *testing.T, s store.Store) {
	t.Helper()
	got, err := s.TokenByHash(ctx(t), LegacyToken.Hash)
	if err != nil {
		t.Fatalf("the token of the old store: %v", err)
	}
	if d := cmp.Diff(LegacyToken, got); d != "" {
		t.Errorf("the token of the old store (-want +got):\n%s", d)
	}
	if err := got.Usable(time.Now()); err != nil {
		t.Errorf("the token of the old store is not usable: %v", err)
	}
	if err := s.TouchToken(ctx(t), LegacyToken.ID, t0); err != nil {
		t.Errorf("TouchToken: %v", err)
	}
	if r, err := s.RevokeToken(ctx(t), LegacyToken.ID, t0); err != nil || r.Revoked.IsZero() || !r.LastUsed.Equal(t0) {
		t.Errorf("RevokeToken: %+v %v", r, err)
	}
}
