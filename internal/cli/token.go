package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"gpubroker/internal/api"
)

func newTokenCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens",
		Long: `token manages the bearer tokens of the API. Each token belongs to a team and
has a role: admin (everything, every team), member (submit, read and cancel
its team's work), viewer (read only) or metrics (read /metrics only, for a
Prometheus scraper). The server keeps only a hash; the secret is printed
once, when the token is created. A token may expire (--ttl), and can be
revoked: from the next request on, every server sharing the store answers
it with 401.`,
		Example: `  gpubroker token create --team research --role member --name alice --ttl 30d
  gpubroker token create --team ops --role metrics --name prometheus
  gpubroker token list
  gpubroker token revoke alice`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTokenCreateCmd(env), newTokenListCmd(env), newTokenRevokeCmd(env))
	return cmd
}

type tokenCreateOptions struct {
	client clientOptions
	team   string
	role   string
	name   string
	ttl    string
	store  string
	output string
}

func newTokenCreateCmd(env *Env) *cobra.Command {
	var o tokenCreateOptions
	cmd := &cobra.Command{
		Use:   "create --team TEAM --role admin|member|viewer|metrics [--ttl DURATION]",
		Short: "Create a token and print its secret (shown once)",
		Long: `create makes a token through the API (which takes an admin token), or with
--store directly in the server's store: the way to make the first tokens
of a shared server, run where the store is reachable. The secret goes to
stdout alone, so it can be captured; what it is goes to stderr.

--ttl makes the token stop working after that long (a Go duration such as
90m or 24h, or days such as 30d; at most 3650d). Without it the token works
until revoked.`,
		Example: `  # Through the API, with an admin token
  gpubroker token create --team research --role member --name alice

  # A token for CI that stops working after a day
  gpubroker token create --team research --role member --name ci --ttl 24h

  # A token for Prometheus: /metrics only
  gpubroker token create --team ops --role metrics --name prometheus

  # Straight into a PostgreSQL store, to bootstrap a shared server
  gpubroker token create --team platform --role admin --store postgres://broker@db/gpubroker`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, o.output, "text", "json", "yaml"); err != nil {
				return err
			}
			o.role = strings.ToLower(o.role)
			if o.team == "" {
				return usageError(cmd, "--team: give the token's team")
			}
			if !api.ValidRole(o.role) {
				return usageError(cmd, "--role: %q is not a role; use %s", o.role, api.Roles)
			}
			if err := api.CheckTokenName(o.name); err != nil {
				return usageError(cmd, "--name: %v", err)
			}
			ttl, err := api.ParseTTL(o.ttl)
			if err != nil {
				return usageError(cmd, "--ttl: %v", err)
			}
			ctx := cmd.Context()
			var tok *api.CreatedToken
			if o.store != "" {
				if tok, err = env.createTokenInStore(ctx, o.store, o.team, o.role, o.name, ttl); err != nil {
					return err
				}
			} else {
				c, err := env.connect(ctx, o.client, false)
				if err != nil {
					return err
				}
				tok, err = c.CreateToken(ctx, api.TokenRequest{Team: o.team, Role: o.role, Name: o.name, TTL: o.ttl})
				if err != nil {
					return err
				}
			}
			if ok, err := writeDoc(env.Stdout, o.output, tok); ok {
				return err
			}
			expires := "it does not expire"
			if !tok.Expires.IsZero() {
				expires = "it expires at " + tok.Expires.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(env.Stderr, "created token %s for team %s, role %s (%s); the secret below is shown only now:\n", tok.ID, tok.Team, tok.Role, expires)
			_, err = fmt.Fprintln(env.Stdout, tok.Token)
			return err
		},
	}
	addClientFlags(cmd, &o.client)
	f := cmd.Flags()
	f.StringVar(&o.team, "team", "", "the token's `TEAM`")
	f.StringVar(&o.role, "role", "member", "`ROLE`: admin, member, viewer or metrics")
	f.StringVar(&o.name, "name", "", "a `NAME` to recognise the token by (who holds it)")
	f.StringVar(&o.ttl, "ttl", "", "the token stops working after this `DURATION` (90m, 24h, 30d); default: never")
	f.StringVar(&o.store, "store", "", "create it directly in this store `URL` (sqlite:PATH or postgres://...) instead of through the API")
	f.StringVarP(&o.output, "output", "o", "text", "output `FORMAT`: text (the secret alone), json, yaml")
	return cmd
}

type tokenListOptions struct {
	client clientOptions
	output string
}

func newTokenListCmd(env *Env) *cobra.Command {
	var o tokenListOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens (admin; no secrets)",
		Long: `list shows every token, revoked ones included: its team, role and name, when
it was created, when it expires, when it was last used (the server records
use at most once a minute) and when it was revoked.`,
		Example: `  gpubroker token list
  gpubroker token list -o yaml`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, o.output, "table", "json", "yaml"); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := env.connect(ctx, o.client, false)
			if err != nil {
				return err
			}
			toks, err := c.Tokens(ctx)
			if err != nil {
				return err
			}
			if ok, err := writeDoc(env.Stdout, o.output, map[string]any{"tokens": nonNil(toks)}); ok {
				return err
			}
			tw := newTable(env.Stdout)
			fmt.Fprintln(tw, "ID\tTEAM\tROLE\tNAME\tCREATED\tEXPIRES\tLAST USE\tREVOKED")
			now := env.Now()
			for _, t := range toks {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Team, t.Role, orDash(t.Name),
					ago(now, t.Created, "-"), expiresIn(now, t.Expires), ago(now, t.LastUsed, "never"), ago(now, t.Revoked, "-"))
			}
			return tw.Flush()
		},
	}
	addClientFlags(cmd, &o.client)
	addOutputFlag(cmd, &o.output, "table", "json", "yaml")
	return cmd
}

// ago is "3h ago", or none for the zero time.
func ago(now, t time.Time, none string) string {
	if t.IsZero() {
		return none
	}
	return age(now.Sub(t)) + " ago"
}

// expiresIn is "in 23h", "expired 1h ago", or "never".
func expiresIn(now, t time.Time) string {
	switch {
	case t.IsZero():
		return "never"
	case t.After(now):
		return "in " + age(t.Sub(now))
	}
	return "expired " + age(now.Sub(t)) + " ago"
}

type tokenRevokeOptions struct {
	client clientOptions
	store  string
	output string
}

func newTokenRevokeCmd(env *Env) *cobra.Command {
	var o tokenRevokeOptions
	cmd := &cobra.Command{
		Use:   "revoke ID|NAME...",
		Short: "Revoke tokens: refused from the next request on (admin)",
		Long: `revoke marks tokens revoked, by ID (tok-...) or by name when one token not
yet revoked has it. Every server sharing the store answers the next request
with a revoked token with 401, on the API and the dashboard. A revoked
token stays listed (token list) and cannot be restored: create a new one.

With --store it writes straight into the server's store, as token create
--store does: the way out when the only admin token has leaked.`,
		Example: `  gpubroker token revoke tok-3f9a2c41d0be
  gpubroker token revoke alice ci-bot
  gpubroker token revoke tok-3f9a2c41d0be --store postgres://broker@db/gpubroker`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError(cmd, "%s needs the ID or name of a token (see gpubroker token list)", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, o.output, "text", "json", "yaml"); err != nil {
				return err
			}
			ctx := cmd.Context()
			var done []api.Token
			var err error
			if o.store != "" {
				done, err = env.revokeTokensInStore(ctx, o.store, args)
			} else {
				var c *api.Client
				if c, err = env.connect(ctx, o.client, false); err != nil {
					return err
				}
				done, err = revokeTokens(args, func() ([]api.Token, error) { return c.Tokens(ctx) },
					func(id string) (*api.Token, error) { return c.RevokeToken(ctx, id) })
			}
			if len(done) > 0 {
				if ok, werr := writeDoc(env.Stdout, o.output, map[string]any{"tokens": done}); ok {
					if werr != nil {
						return werr
					}
				} else {
					for _, t := range done {
						fmt.Fprintf(env.Stdout, "revoked token %s (team %s, role %s, name %s)\n", t.ID, t.Team, t.Role, orDash(t.Name))
					}
				}
			}
			return err
		},
	}
	addClientFlags(cmd, &o.client)
	cmd.Flags().StringVar(&o.store, "store", "", "revoke directly in this store `URL` (sqlite:PATH or postgres://...) instead of through the API")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output `FORMAT`: text, json, yaml")
	return cmd
}

// revokeTokens revokes the token each of args names (pickToken), in
// order, listing the tokens once; it stops at the first failure and
// returns the tokens revoked before it.
func revokeTokens(args []string, list func() ([]api.Token, error), revoke func(id string) (*api.Token, error)) ([]api.Token, error) {
	toks, err := list()
	if err != nil {
		return nil, err
	}
	var done []api.Token
	for _, arg := range args {
		id, err := pickToken(toks, arg)
		if err != nil {
			return done, err
		}
		t, err := revoke(id)
		if err != nil {
			return done, fmt.Errorf("revoking %s: %w", id, err)
		}
		done = append(done, *t)
	}
	return done, nil
}

// pickToken is the ID of the token arg names: its ID, or the name of
// exactly one token not revoked yet.
func pickToken(toks []api.Token, arg string) (string, error) {
	var named []string
	for _, t := range toks {
		if t.ID == arg {
			return t.ID, nil
		}
		if t.Name == arg && t.Revoked.IsZero() {
			named = append(named, t.ID)
		}
	}
	switch len(named) {
	case 1:
		return named[0], nil
	case 0:
		return "", fmt.Errorf("no token has the ID or name %q (revoked ones are matched by ID only); gpubroker token list shows them", arg)
	}
	return "", fmt.Errorf("%d tokens are named %q (%s); give the ID of the one to revoke", len(named), arg, strings.Join(named, ", "))
}
