package server

import (
	"gpubroker/internal/server/httpapi"
	"gpubroker/internal/store"
)

// Tokens, as internal/server/httpapi makes and checks them; here for the
// CLI (`gpubroker token create --store`) and for tests.

// Roles a token can have.
const (
	RoleAdmin   = httpapi.RoleAdmin
	RoleMember  = httpapi.RoleMember
	RoleViewer  = httpapi.RoleViewer
	RoleMetrics = httpapi.RoleMetrics
)

// DefaultTeam is the team of the admin token written on first start.
const DefaultTeam = httpapi.DefaultTeam

// AdminTokenFile is the name, under Config.StateDir, of the file holding
// the admin token created on an empty store.
const AdminTokenFile = httpapi.AdminTokenFile

// OutcomeRetried is the Outcome of an attempt that another one followed
// (GET /v1/jobs/{id}/attempts).
const OutcomeRetried = httpapi.OutcomeRetried

// ValidRole reports whether r is a role a token may have.
func ValidRole(r string) bool { return httpapi.ValidRole(r) }

// HashToken is how a token's secret is stored and looked up.
func HashToken(secret string) string { return httpapi.HashToken(secret) }

// NewToken makes a token for team and role: the secret to show once and
// the record to store. The caller sets Created and stores it.
func NewToken(team, role, name string) (secret string, t store.Token) {
	return httpapi.NewToken(team, role, name)
}

// Attempt is one run of a job on one cluster, as its events tell it (GET
// /v1/jobs/{id}/attempts).
type Attempt = httpapi.Attempt
