package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client calls the /v1 API of one server with one bearer token. Every
// method returns *Error for a 4xx/5xx answer and a wrapped transport error
// when the server could not be reached. Safe for concurrent use.
type Client struct {
	base  string // "http://127.0.0.1:8470", no trailing slash
	token string
	hc    *http.Client
}

// NewClient returns a client of the server at base. hc nil: a default
// client without a timeout (logs are streamed).
func NewClient(base, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimRight(base, "/"), token: token, hc: hc}
}

// Base is the server's URL.
func (c *Client) Base() string { return c.base }

// Healthy reports whether the server answers GET /healthz with 200.
func (c *Client) Healthy(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// request sends body as JSON; an answer of 400 or more becomes *Error.
func (c *Client) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
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

// decodeError reads an error answer; a body not in the documented shape
// (a proxy's page) becomes the message.
func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var doc ErrorBody
	if json.Unmarshal(data, &doc) == nil && doc.Error != nil {
		doc.Error.Status = resp.StatusCode
		return doc.Error
	}
	return &Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(data))}
}

// do sends body as JSON and decodes the answer into out.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// Submit is POST /v1/jobs.
func (c *Client) Submit(ctx context.Context, r SubmitRequest) (*SubmitResponse, error) {
	var out SubmitResponse
	if err := c.do(ctx, http.MethodPost, "/v1/jobs", r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListJobs is one page of GET /v1/jobs.
func (c *Client) ListJobs(ctx context.Context, o ListOptions) ([]*Job, error) {
	q := url.Values{}
	if o.Team != "" {
		q.Set("team", o.Team)
	}
	if len(o.States) > 0 {
		s := make([]string, len(o.States))
		for i, st := range o.States {
			s[i] = string(st)
		}
		q.Set("state", strings.Join(s, ","))
	}
	if o.After > 0 {
		q.Set("after", strconv.FormatInt(o.After, 10))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	path := "/v1/jobs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out JobList
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out.Jobs, nil
}

// AllJobs pages through GET /v1/jobs (o.Limit a page, default 500) and
// returns every match in ID order.
func (c *Client) AllJobs(ctx context.Context, o ListOptions) ([]*Job, error) {
	if o.Limit <= 0 {
		o.Limit = 500
	}
	var all []*Job
	for {
		page, err := c.ListJobs(ctx, o)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < o.Limit {
			return all, nil
		}
		o.After = page[len(page)-1].ID
	}
}

// Job is GET /v1/jobs/{id}.
func (c *Client) Job(ctx context.Context, id int64) (*Job, error) {
	var j Job
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/jobs/%d", id), nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// Cancel is POST /v1/jobs/{id}/cancel: the job as it is now.
func (c *Client) Cancel(ctx context.Context, id int64) (*Job, error) {
	var j Job
	if err := c.do(ctx, http.MethodPost, fmt.Sprintf("/v1/jobs/%d/cancel", id), nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// Events is GET /v1/jobs/{id}/events.
func (c *Client) Events(ctx context.Context, id int64) ([]Event, error) {
	var out EventList
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/jobs/%d/events", id), nil, &out); err != nil {
		return nil, err
	}
	return out.Events, nil
}

// Attempts is GET /v1/jobs/{id}/attempts, oldest first.
func (c *Client) Attempts(ctx context.Context, id int64) ([]Attempt, error) {
	var out AttemptList
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/jobs/%d/attempts", id), nil, &out); err != nil {
		return nil, err
	}
	return out.Attempts, nil
}

// Logs opens the output of a job's attempt (0: the current one),
// streamed until the attempt ends when follow is set; the caller closes
// it.
func (c *Client) Logs(ctx context.Context, id int64, attempt int, follow bool) (io.ReadCloser, error) {
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

// TailLogs opens the last lines lines of each node's output of a job's
// attempt (0: the current one); the caller closes it.
func (c *Client) TailLogs(ctx context.Context, id int64, attempt, lines int) (io.ReadCloser, error) {
	q := url.Values{"tail": {strconv.Itoa(lines)}}
	if attempt > 0 {
		q.Set("attempt", strconv.Itoa(attempt))
	}
	resp, err := c.request(ctx, http.MethodGet, fmt.Sprintf("/v1/jobs/%d/logs?%s", id, q.Encode()), nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Fleet is GET /v1/fleet; ErrNotFound while none was applied.
func (c *Client) Fleet(ctx context.Context) (*FleetDoc, error) {
	var out FleetDoc
	if err := c.do(ctx, http.MethodGet, "/v1/fleet", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutFleet is PUT /v1/fleet.
func (c *Client) PutFleet(ctx context.Context, doc string) (*FleetApplied, error) {
	var out FleetApplied
	if err := c.do(ctx, http.MethodPut, "/v1/fleet", FleetRequest{Fleet: doc}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Clusters is GET /v1/clusters.
func (c *Client) Clusters(ctx context.Context) ([]Cluster, error) {
	var out ClusterList
	if err := c.do(ctx, http.MethodGet, "/v1/clusters", nil, &out); err != nil {
		return nil, err
	}
	return out.Clusters, nil
}

// Teams is GET /v1/teams.
func (c *Client) Teams(ctx context.Context) ([]Team, error) {
	var out TeamList
	if err := c.do(ctx, http.MethodGet, "/v1/teams", nil, &out); err != nil {
		return nil, err
	}
	return out.Teams, nil
}

// Usage is GET /v1/usage; since "" and by nil take the server's defaults.
func (c *Client) Usage(ctx context.Context, since string, by []string) (*Usage, error) {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if len(by) > 0 {
		q.Set("by", strings.Join(by, ","))
	}
	var out Usage
	if err := c.do(ctx, http.MethodGet, "/v1/usage?"+q.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Plan is POST /v1/plan.
func (c *Client) Plan(ctx context.Context, r PlanRequest) (*Plan, error) {
	var out Plan
	if err := c.do(ctx, http.MethodPost, "/v1/plan", r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateToken is POST /v1/tokens (admin).
func (c *Client) CreateToken(ctx context.Context, r TokenRequest) (*CreatedToken, error) {
	var out CreatedToken
	if err := c.do(ctx, http.MethodPost, "/v1/tokens", r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeToken is POST /v1/tokens/{id}/revoke (admin): the token is
// refused from the next request on, by every replica.
func (c *Client) RevokeToken(ctx context.Context, id string) (*Token, error) {
	var out Token
	if err := c.do(ctx, http.MethodPost, "/v1/tokens/"+url.PathEscape(id)+"/revoke", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Tokens is GET /v1/tokens (admin).
func (c *Client) Tokens(ctx context.Context) ([]Token, error) {
	var out TokenList
	if err := c.do(ctx, http.MethodGet, "/v1/tokens", nil, &out); err != nil {
		return nil, err
	}
	return out.Tokens, nil
}
