package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/store"
)

// Roles a token can have (the wire's; see api.ValidRole).
const (
	RoleAdmin  = api.RoleAdmin
	RoleMember = api.RoleMember
	RoleViewer = api.RoleViewer
)

// DefaultTeam is the team of the admin token written on first start.
const DefaultTeam = "default"

// AdminTokenFile is the name, under Config.StateDir, of the file holding
// the admin token created on an empty store.
const AdminTokenFile = "admin.token"

// tokenPrefix marks gpubroker secrets so that scanners and people can
// recognise one.
const tokenPrefix = "gpb_"

// ValidRole reports whether r is a role a token may have.
func ValidRole(r string) bool { return api.ValidRole(r) }

// HashToken is how a token's secret is stored and looked up: hex SHA-256.
// Anything that creates tokens directly in the store (the CLI's
// `token create --store`) must use it.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewToken makes a token for team and role: the secret to show once
// (gpb_ + 32 random bytes, base64url) and the record to store (ID and
// hash, no secret). The caller sets Created and stores it.
func NewToken(team, role, name string) (secret string, t store.Token) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
	secret = tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, store.Token{ID: randomID("tok-"), Hash: HashToken(secret), Team: team, Role: role, Name: name}
}

// randomID is prefix + 12 random hex digits.
func randomID(prefix string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return prefix + hex.EncodeToString(b[:])
}

// BootstrapAdmin creates the first admin token on an empty store. The
// file is written before the token is stored, so a failure leaves either
// nothing or an unused file, never a token nobody can read.
func (s *Server) BootstrapAdmin(ctx context.Context) error {
	toks, err := s.store.ListTokens(ctx)
	if err != nil {
		return fmt.Errorf("server: listing tokens: %w", err)
	}
	if len(toks) > 0 {
		return nil
	}
	secret, t := NewToken(DefaultTeam, RoleAdmin, "local admin")
	t.Created = s.now().UTC()
	var path string
	if s.cfg.StateDir != "" {
		if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
			return fmt.Errorf("server: creating the state directory: %w", err)
		}
		path = filepath.Join(s.cfg.StateDir, AdminTokenFile)
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(secret+"\n"), 0o600); err != nil {
			return fmt.Errorf("server: writing the admin token: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("server: writing the admin token: %w", err)
		}
	}
	if err := s.store.CreateToken(ctx, t); err != nil {
		if path != "" {
			os.Remove(path)
		}
		return fmt.Errorf("server: storing the admin token: %w", err)
	}
	s.log.Info("created the admin token for team default", "file", path)
	return nil
}

// principal is who a request acts for.
type principal struct {
	tok store.Token
}

func (p principal) admin() bool { return p.tok.Role == RoleAdmin }

// canWrite reports whether p may submit and cancel (its own team's work).
func (p principal) canWrite() bool { return p.tok.Role == RoleAdmin || p.tok.Role == RoleMember }

// sees reports whether p may see work of team.
func (p principal) sees(team string) bool { return p.admin() || p.tok.Team == team }

func (p principal) actor() string { return "api:" + p.tok.ID }

// tokenCache remembers tokens found by hash. Tokens are never deleted or
// changed in the store, so a found token stays valid; unknown hashes are
// looked up every time (a token created by another process works at once).
type tokenCache struct {
	mu sync.RWMutex
	m  map[string]store.Token
}

func (c *tokenCache) get(h string) (store.Token, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.m[h]
	return t, ok
}

func (c *tokenCache) put(t store.Token) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]store.Token{}
	}
	if len(c.m) > 100_000 {
		clear(c.m)
	}
	c.m[t.Hash] = t
}

// authenticate finds the request's token: 401 without one or with one the
// store does not know.
func (s *Server) authenticate(r *http.Request) (principal, *apiError) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return principal{}, &apiError{Status: http.StatusUnauthorized, Code: codeUnauthorized,
			Message: "missing bearer token; send Authorization: Bearer <token> (the admin token is in the server's state directory, admin.token)"}
	}
	hash := HashToken(strings.TrimSpace(secret))
	if t, ok := s.tokens.get(hash); ok {
		return principal{tok: t}, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	t, err := s.store.TokenByHash(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return principal{}, &apiError{Status: http.StatusUnauthorized, Code: codeUnauthorized, Message: "unknown token"}
	case err != nil:
		return principal{}, internalError(err)
	}
	s.tokens.put(t)
	return principal{tok: t}, nil
}
