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
	RoleAdmin   = api.RoleAdmin
	RoleMember  = api.RoleMember
	RoleViewer  = api.RoleViewer
	RoleMetrics = api.RoleMetrics
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

// csrfKeyName is the store.SharedKey of the dashboard's form tokens.
const csrfKeyName = "dashboard-csrf"

// csrfKey is the dashboard's CSRF key: made once, kept in the store, so
// that every replica and every restart signs and checks forms alike.
func (s *Server) csrfKey(ctx context.Context) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.store.SharedKey(ctx, csrfKeyName, fresh)
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

// readsMetrics reports whether p may read /metrics (fleet-wide counters).
func (p principal) readsMetrics() bool { return p.tok.Role == RoleAdmin || p.tok.Role == RoleMetrics }

// canWrite reports whether p may submit and cancel (its own team's work).
func (p principal) canWrite() bool { return p.tok.Role == RoleAdmin || p.tok.Role == RoleMember }

// sees reports whether p may see work of team.
func (p principal) sees(team string) bool { return p.admin() || p.tok.Team == team }

func (p principal) actor() string { return "api:" + p.tok.ID }

// useInterval is how often, at most, the API records a token's last use:
// once a minute per token, not a store write per request.
const useInterval = time.Minute

// useRecorder remembers when this process last recorded each token's use,
// so that concurrent requests after the interval write it once, not once
// each.
type useRecorder struct {
	mu sync.Mutex
	m  map[string]time.Time // token ID -> when recorded
}

// due reports whether the use of t at now should be written, and if so
// marks it written.
func (u *useRecorder) due(t store.Token, now time.Time) bool {
	if now.Sub(t.LastUsed) < useInterval {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if last, ok := u.m[t.ID]; ok && now.Sub(last) < useInterval {
		return false
	}
	if u.m == nil || len(u.m) > 100_000 {
		u.m = map[string]time.Time{}
	}
	u.m[t.ID] = now
	return true
}

// authenticate finds the request's token: 401 without one, with one the
// store does not know, or with one revoked or expired. The token is read
// from the store on every request, not cached: a revocation by any
// replica sharing the store takes effect on the next request everywhere
// (one indexed read; see docs/benchmarks.md, BenchmarkAuthenticate). Its
// last use is written at most once a minute.
func (s *Server) authenticate(r *http.Request) (principal, *apiError) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return principal{}, &apiError{Status: http.StatusUnauthorized, Code: codeUnauthorized,
			Message: "missing bearer token; send Authorization: Bearer <token> (the admin token is in the server's state directory, admin.token)"}
	}
	hash := HashToken(strings.TrimSpace(secret))
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	t, err := s.store.TokenByHash(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return principal{}, &apiError{Status: http.StatusUnauthorized, Code: codeUnauthorized, Message: "unknown token"}
	case err != nil:
		return principal{}, internalError(err)
	}
	now := s.now()
	if err := t.Usable(now); err != nil {
		return principal{}, &apiError{Status: http.StatusUnauthorized, Code: codeUnauthorized,
			Message: err.Error() + "; ask an admin for a new one (gpubroker token create)"}
	}
	if s.uses.due(t, now) {
		// Not the request's context: a client that hangs up must not
		// leave the use half recorded. A failure (a full disk, say) is
		// logged, and does not refuse the request.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Second)
		if err := s.store.TouchToken(wctx, t.ID, now.UTC()); err != nil {
			s.log.Warn("recording a token's last use", "token", t.ID, "err", err)
		}
		cancel()
	}
	return principal{tok: t}, nil
}

// metricsOnly is the answer to a metrics token anywhere but /metrics.
func metricsOnly() *apiError {
	return forbidden("a metrics token reads /metrics only; use a member, viewer or admin token")
}
