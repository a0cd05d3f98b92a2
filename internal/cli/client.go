package cli

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"gpubroker/internal/api"
)

// The API commands (status, launch, logs, cancel, events, fleet, usage,
// token) are thin layers over api.Client: they read and print api types
// only, and import neither server nor store (internal/arch checks it).

// clientOptions are the flags every API command takes.
type clientOptions struct {
	server string
	token  string
}

func addClientFlags(cmd *cobra.Command, o *clientOptions) {
	f := cmd.Flags()
	f.StringVar(&o.server, "server", "", "gpubroker server `URL` (default: $GPUBROKER_SERVER, else the local server in the state directory)")
	f.StringVar(&o.token, "token", "", "API `TOKEN` (default: $GPUBROKER_TOKEN, else the local server's admin.token)")
}

func newClient(base, token string) *api.Client {
	return api.NewClient(base, token, nil)
}

// tokenHint follows an unauthorized error: what to do about it.
const tokenHint = " (give a token with --token or GPUBROKER_TOKEN)"

// notFound reports whether err is the server's 404.
func notFound(err error) bool { return errors.Is(err, api.ErrNotFound) }

// transient reports whether err means the server could not be reached or
// went away mid-request (a restart), so the same request may be retried.
func transient(err error) bool {
	if err == nil {
		return false
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return errors.Is(ae, api.ErrUnavailable)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.As(err, &ne)
}

// healthy reports whether a server answers /healthz at base.
func healthy(ctx context.Context, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return api.NewClient(base, "", http.DefaultClient).Healthy(ctx)
}

// retry calls f until it succeeds, fails for a reason other than the
// server being unreachable, or patience runs out: a server that restarts
// (or is restarted by its supervisor) should not fail a command that can
// safely be repeated.
func retry[T any](ctx context.Context, patience time.Duration, f func() (T, error)) (T, error) {
	deadline := time.Now().Add(patience)
	wait := 100 * time.Millisecond
	for {
		v, err := f()
		if err == nil || !transient(err) || time.Now().Add(wait).After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// parseJobID reads a job ID argument.
func parseJobID(cmd *cobra.Command, s string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	if err != nil || id <= 0 {
		return 0, usageError(cmd, "%q is not a job ID (a positive number, as status shows)", s)
	}
	return id, nil
}
