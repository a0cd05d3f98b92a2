package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Roles a token can have.
const (
	RoleAdmin   = "admin"   // everything, every team
	RoleMember  = "member"  // submit, read and cancel its team's work
	RoleViewer  = "viewer"  // read its team's work
	RoleMetrics = "metrics" // read /metrics only (a Prometheus scraper)
)

// Roles lists the roles, for messages.
const Roles = "admin, member, viewer or metrics"

// ValidRole reports whether r is a role a token may have.
func ValidRole(r string) bool {
	return r == RoleAdmin || r == RoleMember || r == RoleViewer || r == RoleMetrics
}

// MaxTTL is the longest lifetime a token may be given.
const MaxTTL = 10 * 365 * 24 * time.Hour

// ParseTTL reads a token lifetime: a Go duration ("90m", "24h") or a
// number of days ("30d"), from 1s to MaxTTL. "" is 0: the token never
// expires. The error says what is wrong and what to give.
func ParseTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || days != days || days > float64(MaxTTL/(24*time.Hour)) {
			return 0, fmt.Errorf("%.40q is not a duration; give one like 90m, 24h or 30d", s)
		}
		d = time.Duration(days * float64(24*time.Hour))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%.40q is not a duration; give one like 90m, 24h or 30d", s)
		}
	}
	switch {
	case d < time.Second:
		return 0, fmt.Errorf("%.40q is under a second; give at least 1s (or none: the token never expires)", s)
	case d > MaxTTL:
		return 0, fmt.Errorf("%.40q is over 10 years (3650d); give less (or none: the token never expires)", s)
	}
	return d, nil
}

// MaxTokenName bounds a token's free-text name, in bytes.
const MaxTokenName = 256

// CheckTokenName reports a token name the broker refuses: over
// MaxTokenName bytes, or holding control characters (PostgreSQL refuses
// NUL in text, and no listing should carry escapes or line breaks from a
// name). The error says what to give.
func CheckTokenName(name string) error {
	if len(name) > MaxTokenName {
		return fmt.Errorf("%d characters; give at most %d", len(name), MaxTokenName)
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return fmt.Errorf("%.64q holds control characters; give printable text", name)
	}
	return nil
}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Team string `json:"team"`
	Role string `json:"role"`
	Name string `json:"name,omitempty"`
	// TTL, when set, is how long the token works (ParseTTL: "24h",
	// "30d"); none: it works until revoked.
	TTL string `json:"ttl,omitempty"`
}

// CreatedToken is the answer of POST /v1/tokens: the secret is shown
// once, here.
type CreatedToken struct {
	Token   string    `json:"token"`
	ID      string    `json:"id"`
	Team    string    `json:"team"`
	Role    string    `json:"role"`
	Name    string    `json:"name,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
}

// Token is a token as listed: never its secret or hash. Zero times are
// left out: no expiry, not revoked, never used (the server records use
// at most once a minute).
type Token struct {
	ID       string    `json:"id"`
	Team     string    `json:"team"`
	Role     string    `json:"role"`
	Name     string    `json:"name,omitempty"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	LastUsed time.Time `json:"last_used,omitzero"`
	Revoked  time.Time `json:"revoked,omitzero"`
}

// TokenList is the answer of GET /v1/tokens.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}
