package cli

import (
	"context"
	"fmt"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/model"
	"gpubroker/internal/server"
	"gpubroker/internal/store"
)

// createTokenInStore is `token create --store`: it writes a token straight
// into the server's store, the way to make the first tokens of a shared
// server. Like server.go and drivers.go it works on the server's side of
// the API, so it may import server and store (internal/arch names these
// files); the API commands may not.
func (env *Env) createTokenInStore(ctx context.Context, url, team, role, name string, ttl time.Duration) (*api.CreatedToken, error) {
	if !model.ValidName(team) {
		return nil, fmt.Errorf("--team: %q is not a valid team name; %s", team, model.NameRule)
	}
	d, err := env.drivers()
	if err != nil {
		return nil, err
	}
	st, err := d.OpenStore(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	defer st.Close()
	secret, t := server.NewToken(team, role, name)
	t.Created = env.Now().UTC().Truncate(time.Second)
	if ttl > 0 {
		t.Expires = t.Created.Add(ttl)
	}
	if err := st.CreateToken(ctx, t); err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	return &api.CreatedToken{Token: secret, ID: t.ID, Team: t.Team, Role: t.Role, Name: t.Name, Expires: t.Expires}, nil
}

// revokeTokensInStore is `token revoke --store`: revocation straight in
// the store, for when no admin token is left to ask the API with.
func (env *Env) revokeTokensInStore(ctx context.Context, url string, args []string) ([]api.Token, error) {
	d, err := env.drivers()
	if err != nil {
		return nil, err
	}
	st, err := d.OpenStore(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	defer st.Close()
	list := func() ([]api.Token, error) {
		toks, err := st.ListTokens(ctx)
		if err != nil {
			return nil, fmt.Errorf("--store: %w", err)
		}
		out := make([]api.Token, len(toks))
		for i, t := range toks {
			out[i] = wireToken(t)
		}
		return out, nil
	}
	return revokeTokens(args, list, func(id string) (*api.Token, error) {
		t, err := st.RevokeToken(ctx, id, env.Now().UTC())
		if err != nil {
			return nil, fmt.Errorf("--store: %w", err)
		}
		w := wireToken(t)
		return &w, nil
	})
}

func wireToken(t store.Token) api.Token {
	return api.Token{ID: t.ID, Team: t.Team, Role: t.Role, Name: t.Name, Created: t.Created,
		Expires: t.Expires, LastUsed: t.LastUsed, Revoked: t.Revoked}
}
