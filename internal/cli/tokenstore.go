package cli

import (
	"context"
	"fmt"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/model"
	"gpubroker/internal/server"
)

// createTokenInStore is `token create --store`: it writes a token straight
// into the server's store, the way to make the first tokens of a shared
// server. Like server.go and drivers.go it works on the server's side of
// the API, so it may import server and store (internal/arch names these
// files); the API commands may not.
func (env *Env) createTokenInStore(ctx context.Context, url, team, role, name string) (*api.CreatedToken, error) {
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
	if err := st.CreateToken(ctx, t); err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	return &api.CreatedToken{Token: secret, ID: t.ID, Team: t.Team, Role: t.Role, Name: t.Name}, nil
}
