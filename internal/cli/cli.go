package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"gpubroker/internal/api"
)

// Exit codes: 0 success; 1 a failure (bad input, nothing can run the
// workload); 2 the command line itself is wrong.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Env is what a command may touch outside itself. Tests build one with
// buffers and a fixed clock.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Now reads the wall clock; commands call it once and pass the time on.
	Now func() time.Time
	// ReadFile reads an input file named on the command line.
	ReadFile func(name string) ([]byte, error)
	// Drivers open stores and backends for `server` and `token create
	// --store`; cmd/gpubroker sets them (see Main).
	Drivers Drivers
}

// Run runs the gpubroker command line args (without the program name) and
// returns the process exit code. Errors are printed to stderr. It has no
// drivers; Main is Run with them.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return newEnv(stdin, stdout, stderr).Run(ctx, args)
}

func newEnv(stdin io.Reader, stdout, stderr io.Writer) *Env {
	return &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, Now: time.Now, ReadFile: os.ReadFile}
}

// Run runs args against env; see the package-level Run.
func (env *Env) Run(ctx context.Context, args []string) int {
	root := newRootCmd(env)
	if args == nil {
		args = []string{} // cobra reads os.Args when given nil
	}
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	msg := strings.TrimRight(err.Error(), "\n")
	if errors.Is(err, api.ErrUnauthorized) {
		msg += tokenHint
	}
	for _, line := range strings.Split(msg, "\n") {
		fmt.Fprintf(env.Stderr, "error: %s\n", line)
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.code == exitUsage && ee.cmd != nil {
			fmt.Fprintf(env.Stderr, "Run '%s --help' for usage.\n", ee.cmd.CommandPath())
		}
		return ee.code
	}
	return exitFailure
}

// exitError carries an exit code other than exitFailure, and for usage
// errors the command whose help to point at.
type exitError struct {
	code int
	cmd  *cobra.Command
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(cmd *cobra.Command, format string, args ...any) error {
	return &exitError{code: exitUsage, cmd: cmd, err: fmt.Errorf(format, args...)}
}

// commands lists every subcommand, in the order help shows them. A new
// command is one file with a newXxxCmd(env) and one line here.
var commands = []func(*Env) *cobra.Command{
	newLaunchCmd,
	newStatusCmd,
	newLogsCmd,
	newCancelCmd,
	newEventsCmd,
	newPlanCmd,
	newFleetCmd,
	newUsageCmd,
	newSimulateCmd,
	newServerCmd,
	newTokenCmd,
	newVersionCmd,
}

func newRootCmd(env *Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "gpubroker",
		Short: "Place GPU work across clouds, contracts and on-prem clusters",
		Long: `gpubroker places GPU jobs and services across cloud providers, committed
contracts and on-prem clusters at the lowest effective cost, within team
quotas, budgets, data residency and a cap on any one provider's share.

Task files are SkyPilot task YAML with an optional x-gpubroker block (team,
priority, checkpointing, data region). A fleet file lists providers,
clusters, pools, contracts, teams and the placement policy; without one,
gpubroker plans against its built-in price list of public clouds.`,
		Example: `  # Where would this job run, at what effective cost, and why?
  gpubroker plan examples/llama-70b-finetune.yaml --fleet examples/fleet.yaml

  # The same against the built-in catalog of public cloud prices
  gpubroker plan examples/bert-spot.yaml

  # Every candidate, as JSON
  gpubroker plan examples/pipeline.yaml --fleet examples/fleet.yaml --all -o json`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Without subcommand the root only prints help; anything else is a
		// mistyped command.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf("; did you mean %q?", s[0])
			}
			return usageError(cmd, "%s", msg)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError(cmd, "%v", err)
	})
	root.SuggestionsMinimumDistance = 2
	root.CompletionOptions.HiddenDefaultCmd = true
	root.Version = versionString()
	root.SetVersionTemplate("{{.Version}}\n")
	for _, newCmd := range commands {
		root.AddCommand(newCmd(env))
	}
	return root
}

// exactArgs is cobra.ExactArgs with a usage error that names what is
// missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == n:
			return nil
		case n == 0:
			return usageError(cmd, "%s takes no arguments, got %q", cmd.CommandPath(), args)
		default:
			return usageError(cmd, "%s needs %s (%d argument), got %d", cmd.CommandPath(), what, n, len(args))
		}
	}
}
