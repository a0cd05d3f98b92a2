package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"gpubroker/internal/server"
	"gpubroker/internal/store"
)

// The HTTP client of the /v1 API (docs/api.md). Commands other than plan,
// server and version are thin layers over these calls.

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

// client talks to one gpubroker server.
type client struct {
	base  string // "http://127.0.0.1:8470", no trailing slash
	token string
	hc    *http.Client
}

func newClient(base, token string) *client {
	return &client{base: strings.TrimRight(base, "/"), token: token, hc: &http.Client{}}
}

// APIError is a 4xx/5xx answer in the documented error shape.
type APIError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// Errors lists every problem of a task or fleet file with several.
	Errors []string `json:"errors,omitempty"`
}

func (e *APIError) Error() string {
	if len(e.Errors) > 1 {
		return strings.Join(e.Errors, "\n") // printed one "error:" line each
	}
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Field != "" && !strings.Contains(msg, e.Field) {
		msg = e.Field + ": " + msg
	}
	switch e.Status {
	case http.StatusUnauthorized:
		msg += " (give a token with --token or GPUBROKER_TOKEN)"
	}
	return msg
}

// notFound reports whether err is the server's 404.
func notFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// transient reports whether err means the server could not be reached or
// went away mid-request (a restart), so the same request may be retried.
func transient(err error) bool {
	if err == nil {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status == http.StatusBadGateway || ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusGatewayTimeout
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.As(err, &ne)
}

func (c *client) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, c.base+path, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var doc struct {
		Error *APIError `json:"error"`
	}
	if json.Unmarshal(data, &doc) == nil && doc.Error != nil {
		doc.Error.Status = resp.StatusCode
		return doc.Error
	}
	return &APIError{Status: resp.StatusCode, Message: strings.TrimSpace(string(data))}
}

// do sends body as JSON and decodes the answer into out (when not nil).
func (c *client) do(ctx context.Context, method, path string, body, out any) (int, error) {
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

// healthy reports whether a server answers /healthz at base.
func healthy(ctx context.Context, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// submitRequest and submitResponse are POST /v1/jobs.
type submitRequest struct {
	Spec string `json:"spec"`
	// File names the task file in the server's error messages.
	File string `json:"file,omitempty"`
	Team string `json:"team,omitempty"`
	Key  string `json:"key,omitempty"`
}

type submitResponse struct {
	Jobs     []*store.Job `json:"jobs"`
	Warnings []string     `json:"warnings,omitempty"`
}

func (c *client) submit(ctx context.Context, r submitRequest) (*submitResponse, error) {
	var out submitResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/jobs", r, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// listJobs pages through GET /v1/jobs and returns every match in ID order.
func (c *client) listJobs(ctx context.Context, team string, states []string) ([]*store.Job, error) {
	const page = 500
	var all []*store.Job
	var after int64
	for {
		q := url.Values{}
		if team != "" {
			q.Set("team", team)
		}
		if len(states) > 0 {
			q.Set("state", strings.Join(states, ","))
		}
		if after > 0 {
			q.Set("after", strconv.FormatInt(after, 10))
		}
		q.Set("limit", strconv.Itoa(page))
		var out struct {
			Jobs []*store.Job `json:"jobs"`
		}
		if _, err := c.do(ctx, http.MethodGet, "/v1/jobs?"+q.Encode(), nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Jobs...)
		if len(out.Jobs) < page {
			return all, nil
		}
		after = out.Jobs[len(out.Jobs)-1].ID
	}
}

func (c *client) getJob(ctx context.Context, id int64) (*store.Job, error) {
	var j store.Job
	if _, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/jobs/%d", id), nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

func (c *client) cancel(ctx context.Context, id int64) (*store.Job, error) {
	var j store.Job
	if _, err := c.do(ctx, http.MethodPost, fmt.Sprintf("/v1/jobs/%d/cancel", id), nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

func (c *client) events(ctx context.Context, id int64) ([]store.Event, error) {
	var out struct {
		Events []store.Event `json:"events"`
	}
	if _, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/jobs/%d/events", id), nil, &out); err != nil {
		return nil, err
	}
	return out.Events, nil
}

// attempts returns a job's attempts, oldest first (GET /v1/jobs/ID/attempts).
func (c *client) attempts(ctx context.Context, id int64) ([]server.Attempt, error) {
	var out struct {
		Attempts []server.Attempt `json:"attempts"`
	}
	if _, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/jobs/%d/attempts", id), nil, &out); err != nil {
		return nil, err
	}
	return out.Attempts, nil
}

// logs opens the output of a job's attempt (0: the current one); the
// caller closes it.
func (c *client) logs(ctx context.Context, id int64, attempt int, follow bool) (io.ReadCloser, error) {
	q := url.Values{}
	if attempt > 0 {
		q.Set("attempt", strconv.Itoa(attempt))
	}
	if follow {
		q.Set("follow", "1")
	}
	path := fmt.Sprintf("/v1/jobs/%d/logs", id)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := c.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// fleetDoc is GET /v1/fleet.
type fleetDoc struct {
	Version int64  `json:"version"`
	Fleet   string `json:"fleet"`
}

func (c *client) getFleet(ctx context.Context) (*fleetDoc, error) {
	var out fleetDoc
	if _, err := c.do(ctx, http.MethodGet, "/v1/fleet", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

type fleetApplied struct {
	Version  int64    `json:"version"`
	Warnings []string `json:"warnings,omitempty"`
}

func (c *client) putFleet(ctx context.Context, doc string) (*fleetApplied, error) {
	var out fleetApplied
	if _, err := c.do(ctx, http.MethodPut, "/v1/fleet", map[string]string{"fleet": doc}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// apiCluster and apiPool are GET /v1/clusters.
type apiCluster struct {
	Name     string    `json:"name"`
	Provider string    `json:"provider"`
	Region   string    `json:"region"`
	Backend  string    `json:"backend"`
	Healthy  bool      `json:"healthy"`
	Pools    []apiPool `json:"pools"`
}

type apiPool struct {
	Name        string `json:"name"`
	GPU         string `json:"gpu"`
	GPUsPerNode int    `json:"gpus_per_node"`
	Nodes       int    `json:"nodes"`
	GPUsFree    int    `json:"gpus_free"`
	PriceClass  string `json:"price_class"`
}

func (c *client) clusters(ctx context.Context) ([]apiCluster, error) {
	var out struct {
		Clusters []apiCluster `json:"clusters"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/clusters", nil, &out); err != nil {
		return nil, err
	}
	return out.Clusters, nil
}

// usageReport is GET /v1/usage. Rows stay generic: their grouping columns
// depend on `by`.
type usageReport struct {
	Since        string           `json:"since"`
	Until        string           `json:"until"`
	Rows         []map[string]any `json:"rows"`
	TotalCostUSD float64          `json:"total_cost_usd"`
}

func (c *client) usage(ctx context.Context, since string, by []string) (*usageReport, error) {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if len(by) > 0 {
		q.Set("by", strings.Join(by, ","))
	}
	var out usageReport
	if _, err := c.do(ctx, http.MethodGet, "/v1/usage?"+q.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// createdToken is POST /v1/tokens: the secret is shown once.
type createdToken struct {
	Token string `json:"token"`
	ID    string `json:"id"`
	Team  string `json:"team"`
	Role  string `json:"role"`
	Name  string `json:"name,omitempty"`
}

func (c *client) createToken(ctx context.Context, team, role, name string) (*createdToken, error) {
	var out createdToken
	body := map[string]string{"team": team, "role": role, "name": name}
	if _, err := c.do(ctx, http.MethodPost, "/v1/tokens", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *client) listTokens(ctx context.Context) ([]store.Token, error) {
	var out struct {
		Tokens []store.Token `json:"tokens"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/tokens", nil, &out); err != nil {
		return nil, err
	}
	return out.Tokens, nil
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
