package api

import "time"

// Roles a token can have.
const (
	RoleAdmin  = "admin"  // everything, every team
	RoleMember = "member" // submit, read and cancel its team's work
	RoleViewer = "viewer" // read its team's work
)

// ValidRole reports whether r is a role a token may have.
func ValidRole(r string) bool { return r == RoleAdmin || r == RoleMember || r == RoleViewer }

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Team string `json:"team"`
	Role string `json:"role"`
	Name string `json:"name,omitempty"`
}

// CreatedToken is the answer of POST /v1/tokens: the secret is shown
// once, here.
type CreatedToken struct {
	Token string `json:"token"`
	ID    string `json:"id"`
	Team  string `json:"team"`
	Role  string `json:"role"`
	Name  string `json:"name,omitempty"`
}

// Token is a token as listed: never its secret or hash.
type Token struct {
	ID      string    `json:"id"`
	Team    string    `json:"team"`
	Role    string    `json:"role"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
}

// TokenList is the answer of GET /v1/tokens.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}
