package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"gpubroker/internal/api"
)

func newTokenCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create and list API tokens",
		Long: `token manages the bearer tokens of the API. Each token belongs to a team and
has a role: admin (everything, every team), member (submit, read and cancel
its team's work) or viewer (read only). The server keeps only a hash; the
secret is printed once, when the token is created.`,
		Example: `  gpubroker token create --team research --role member --name alice
  gpubroker token list`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTokenCreateCmd(env), newTokenListCmd(env))
	return cmd
}

type tokenCreateOptions struct {
	client clientOptions
	team   string
	role   string
	name   string
	store  string
	output string
}

func newTokenCreateCmd(env *Env) *cobra.Command {
	var o tokenCreateOptions
	cmd := &cobra.Command{
		Use:   "create --team TEAM --role admin|member|viewer",
		Short: "Create a token and print its secret (shown once)",
		Long: `create makes a token through the API (which takes an admin token), or with
--store directly in the server's store: the way to make the first tokens
of a shared server, run where the store is reachable. The secret goes to
stdout alone, so it can be captured; what it is goes to stderr.`,
		Example: `  # Through the API, with an admin token
  gpubroker token create --team research --role member --name alice

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
				return usageError(cmd, "--role: %q is not a role; use admin, member or viewer", o.role)
			}
			ctx := cmd.Context()
			var tok *api.CreatedToken
			if o.store != "" {
				var err error
				if tok, err = env.createTokenInStore(ctx, o.store, o.team, o.role, o.name); err != nil {
					return err
				}
			} else {
				c, err := env.connect(ctx, o.client, false)
				if err != nil {
					return err
				}
				tok, err = c.CreateToken(ctx, api.TokenRequest{Team: o.team, Role: o.role, Name: o.name})
				if err != nil {
					return err
				}
			}
			if ok, err := writeDoc(env.Stdout, o.output, tok); ok {
				return err
			}
			fmt.Fprintf(env.Stderr, "created token %s for team %s, role %s; the secret below is shown only now:\n", tok.ID, tok.Team, tok.Role)
			_, err := fmt.Fprintln(env.Stdout, tok.Token)
			return err
		},
	}
	addClientFlags(cmd, &o.client)
	f := cmd.Flags()
	f.StringVar(&o.team, "team", "", "the token's `TEAM`")
	f.StringVar(&o.role, "role", "member", "`ROLE`: admin, member or viewer")
	f.StringVar(&o.name, "name", "", "a `NAME` to recognise the token by (who holds it)")
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
		Use:     "list",
		Short:   "List tokens (admin; no secrets)",
		Example: `  gpubroker token list -o yaml`,
		Args:    exactArgs(0, "none"),
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
			fmt.Fprintln(tw, "ID\tTEAM\tROLE\tNAME\tAGE")
			now := env.Now()
			for _, t := range toks {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Team, t.Role, orDash(t.Name), age(now.Sub(t.Created)))
			}
			return tw.Flush()
		},
	}
	addClientFlags(cmd, &o.client)
	addOutputFlag(cmd, &o.output, "table", "json", "yaml")
	return cmd
}
