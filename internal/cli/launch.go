package cli

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"gpubroker/internal/api"
)

type launchOptions struct {
	client clientOptions
	detach bool
	team   string
	key    string
}

func newLaunchCmd(env *Env) *cobra.Command {
	var o launchOptions
	cmd := &cobra.Command{
		Use:   "launch TASK.yaml",
		Short: "Submit a task and follow its output until it ends",
		Long: `launch submits a task file (SkyPilot task YAML, optionally with an
x-gpubroker block) to the gpubroker server, prints "submitted job N (name)"
for each job it creates, then follows the output until the jobs end and
prints how each ended. It exits 0 when every job SUCCEEDED, 1 otherwise.
With --detach it returns right after submitting.

The server is --server, else $GPUBROKER_SERVER, else the local server of
the state directory ($GPUBROKER_STATE_DIR, $XDG_STATE_HOME/gpubroker or
~/.local/state/gpubroker). When none answers there, launch starts one in
the background (SQLite store + local backend; logs in server.log of the
state directory) and says so.

The submission carries an idempotency key (--key, or a random one), so a
retry after the server restarted mid-request never submits twice.
Interrupting launch stops following; the job keeps running.`,
		Example: `  # Run the hello example on this machine (starts a local server on first use)
  gpubroker launch examples/hello.yaml

  # Submit for team research and return at once
  gpubroker launch examples/llama-70b-finetune.yaml --team research --detach`,
		Args: exactArgs(1, "the task file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.launch(cmd, args[0], o)
		},
	}
	addClientFlags(cmd, &o.client)
	f := cmd.Flags()
	f.BoolVarP(&o.detach, "detach", "d", false, "return after submitting; do not follow the output")
	f.StringVar(&o.team, "team", "", "submit for `TEAM` (admin tokens only; default: the token's team)")
	f.StringVar(&o.key, "key", "", "idempotency `KEY`: the same key again returns the first submission's jobs (default: random)")
	return cmd
}

func (env *Env) launch(cmd *cobra.Command, file string, o launchOptions) error {
	data, err := env.ReadFile(file)
	if err != nil {
		return fmt.Errorf("task file: %w", err)
	}
	key := o.key
	if key == "" {
		key = "launch-" + randomHex(12)
	}
	ctx := cmd.Context()
	c, err := env.connect(ctx, o.client, true)
	if err != nil {
		return err
	}
	req := api.SubmitRequest{Spec: string(data), File: file, Team: o.team, Key: key}
	resp, err := retry(ctx, serverPatience, func() (*api.SubmitResponse, error) { return c.Submit(ctx, req) })
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && strings.Contains(ae.Message, file) {
			return err // the server's message names the file already
		}
		return fmt.Errorf("%s: %w", file, err)
	}
	for _, w := range resp.Warnings {
		fmt.Fprintf(env.Stderr, "warning: %s\n", w)
	}
	for _, j := range resp.Jobs {
		fmt.Fprintf(env.Stdout, "submitted job %d (%s)\n", j.ID, orDash(j.Name()))
	}
	if o.detach {
		return nil
	}
	var failed []string
	for _, j := range resp.Jobs {
		end, err := env.follow(ctx, c, j.ID)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("stopped following job %d; it keeps running (gpubroker logs -f %d; gpubroker cancel %d)", j.ID, j.ID, j.ID)
			}
			return err
		}
		fmt.Fprintln(env.Stdout, endLine(end))
		if end.State != api.Succeeded {
			failed = append(failed, fmt.Sprintf("job %d %s", end.ID, end.State))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	return nil
}

// endLine says how a job ended: "job 3 (hello) SUCCEEDED after 2s",
// "job 4 (train) FAILED: exit code 1 (attempt 2)".
func endLine(j *api.Job) string {
	s := fmt.Sprintf("job %d (%s) %s", j.ID, orDash(j.Name()), j.State)
	if !j.EndedAt.IsZero() && !j.StartedAt.IsZero() {
		s += " after " + j.EndedAt.Sub(j.StartedAt).Round(100*time.Millisecond).String()
	}
	var why []string
	if j.State != api.Succeeded && j.ExitCode != nil {
		why = append(why, fmt.Sprintf("exit code %d", *j.ExitCode))
	}
	if j.State != api.Succeeded && j.Reason != "" {
		why = append(why, oneLine(j.Reason))
	}
	if len(why) > 0 {
		s += ": " + strings.Join(why, "; ")
	}
	if j.Attempt > 1 {
		s += fmt.Sprintf(" (attempt %d)", j.Attempt)
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
