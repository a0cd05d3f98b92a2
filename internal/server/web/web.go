package web

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/spec"
)

// Principal is who a token acts for, as the API's authentication found it.
type Principal struct {
	Team string
	Role string // admin | member | viewer
}

// Admin reports whether p sees every team.
func (p Principal) Admin() bool { return p.Role == "admin" }

// CanCancel reports whether p may cancel work it can see.
func (p Principal) CanCancel() bool { return p.Role == "admin" || p.Role == "member" }

// Config is what the dashboard needs from the server.
type Config struct {
	// API serves /v1. The dashboard calls it in process with
	// Authorization: Bearer <the session's token>.
	API http.Handler
	// Who authenticates a request that carries Authorization: Bearer, as
	// the API does; an error means the token is not valid.
	Who func(r *http.Request) (Principal, error)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Backends are what the applied fleet is read with (see
	// spec.FleetOptions.Backends); nil: the vocabulary's.
	Backends []spec.Backend
	// CSRFKey gives the key form tokens are signed with. It must be the
	// same for every replica and across restarts (the server keeps it in
	// the store: store.SharedKey), or a form served by one is refused by
	// another. It is asked once, at the first page that needs it, and
	// again after a failure. Nil: a random key of this process (tests).
	CSRFKey func(ctx context.Context) ([]byte, error)
}

// Handler serves the dashboard's pages. Make one with New and add its
// routes to a mux with Register.
type Handler struct {
	cfg    Config
	pages  map[string]*template.Template
	static http.Handler

	keyMu   sync.Mutex
	csrfKey []byte // nil until loaded
}

// cookieName holds the API token of a logged-in browser.
const cookieName = "gpubroker_token"

// PageSize is how many rows a paginated list shows.
const PageSize = 100

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New parses the embedded templates. It panics when they do not parse:
// they are part of the binary, so that is a build error.
func New(cfg Config) *Handler {
	if cfg.API == nil || cfg.Who == nil {
		panic("web: Config.API and Config.Who are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CSRFKey == nil {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			panic("crypto/rand failed: " + err.Error())
		}
		cfg.CSRFKey = func(context.Context) ([]byte, error) { return key, nil }
	}
	h := &Handler{cfg: cfg, pages: map[string]*template.Template{}}
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	for _, p := range []string{"login", "overview", "queue", "job", "fleet", "contracts", "teams", "error"} {
		t := template.Must(template.Must(layout.Clone()).ParseFS(templateFS, "templates/"+p+".html"))
		h.pages[p] = t
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	h.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	return h
}

// Register adds the dashboard's routes to mux. None is under /v1.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", h.page(h.overview))
	mux.HandleFunc("POST /login", h.login)
	mux.HandleFunc("POST /logout", h.logout)
	mux.HandleFunc("GET /queue", h.page(h.queue))
	mux.HandleFunc("GET /jobs/{id}", h.page(h.job))
	mux.HandleFunc("GET /jobs/{id}/logs", h.logsFragment)
	mux.HandleFunc("POST /jobs/{id}/cancel", h.cancel)
	mux.HandleFunc("GET /fleet", h.page(h.fleet))
	mux.HandleFunc("GET /contracts", h.page(h.contracts))
	mux.HandleFunc("GET /teams", h.page(h.teams))
	mux.Handle("GET /static/", h.static)
}

// session is one request of a logged-in browser.
type session struct {
	r     *http.Request
	token string
	who   Principal
	csrf  string
	now   time.Time
}

// errNotLoggedIn means the request has no valid token cookie.
var errNotLoggedIn = errors.New("not logged in")

// session reads the token cookie and authenticates it with the API's own
// authentication.
func (h *Handler) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(cookieName)
	if err != nil || strings.TrimSpace(c.Value) == "" {
		return nil, errNotLoggedIn
	}
	who, err := h.whoIs(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	csrf, err := h.csrfFor(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	return &session{r: r, token: c.Value, who: who, csrf: csrf, now: h.cfg.Now().UTC()}, nil
}

// keyError is a failure to get the CSRF key: the server's fault (503),
// not the token's.
type keyError struct{ err error }

func (e *keyError) Error() string {
	return "the dashboard's form key is not available: " + e.err.Error()
}
func (e *keyError) Unwrap() error { return e.err }

// key returns the CSRF key, asking Config.CSRFKey the first time.
func (h *Handler) key(ctx context.Context) ([]byte, error) {
	h.keyMu.Lock()
	defer h.keyMu.Unlock()
	if h.csrfKey != nil {
		return h.csrfKey, nil
	}
	k, err := h.cfg.CSRFKey(ctx)
	if err != nil {
		return nil, &keyError{err}
	}
	if len(k) == 0 {
		return nil, &keyError{errors.New("empty key")}
	}
	h.csrfKey = k
	return k, nil
}

func (h *Handler) whoIs(ctx context.Context, token string) (Principal, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/v1/teams", nil)
	if err != nil {
		return Principal{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return h.cfg.Who(req)
}

// csrfFor is the form token of a session: an HMAC of its API token under
// the shared key (Config.CSRFKey), so any replica, before or after a
// restart, checks it with no state per session.
func (h *Handler) csrfFor(ctx context.Context, token string) (string, error) {
	key, err := h.key(ctx)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("csrf\x00" + token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
}

func (h *Handler) checkCSRF(s *session, r *http.Request) bool {
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.csrf))
}

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string
	Who     Principal
	CSRF    string
	Now     time.Time
	Refresh int // seconds between content refreshes; 0: none
	Error   string
	Data    any
}

// pageFunc loads one page's data; a non-nil error is shown as an error
// page with its status.
type pageFunc func(s *session) (tmpl string, v view, err error)

// page wraps a pageFunc: without a session it shows the login page, and
// with the X-Fragment header it renders only the page's content, for the
// refresh script.
func (h *Handler) page(f pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := h.session(r)
		var ke *keyError
		if errors.As(err, &ke) {
			h.cfg.Logger.Error("dashboard form key", "err", err)
			h.render(w, r, http.StatusServiceUnavailable, "error", view{Title: "Unavailable", Error: err.Error() + "; try again shortly"})
			return
		}
		if err != nil {
			msg := ""
			if !errors.Is(err, errNotLoggedIn) {
				msg = "Your token is no longer valid: " + err.Error()
			}
			// 401 like the API without a token; browsers show the form.
			h.render(w, r, http.StatusUnauthorized, "login", view{Title: "Log in", Error: msg})
			return
		}
		tmpl, v, err := f(s)
		v.Who, v.CSRF, v.Now = s.who, s.csrf, s.now
		if err != nil {
			status := http.StatusInternalServerError
			var ae *apiErr
			if errors.As(err, &ae) {
				status = ae.status
			} else {
				h.cfg.Logger.Error("dashboard page failed", "path", r.URL.Path, "err", err)
			}
			v.Title, v.Error = http.StatusText(status), err.Error()
			h.render(w, r, status, "error", v)
			return
		}
		h.render(w, r, http.StatusOK, tmpl, v)
	}
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, tmpl string, v view) {
	name := "layout"
	if r.Header.Get("X-Fragment") == "1" {
		name = "main"
	}
	var buf bytes.Buffer
	if err := h.pages[tmpl].ExecuteTemplate(&buf, name, v); err != nil {
		h.cfg.Logger.Error("dashboard template failed", "template", tmpl, "err", err)
		http.Error(w, "template error", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// login checks the pasted token with the API's authentication and keeps
// it in a cookie the page's script cannot read.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	tok := strings.TrimSpace(r.PostFormValue("token"))
	if tok == "" {
		h.render(w, r, http.StatusBadRequest, "login", view{Title: "Log in", Error: "Paste an API token (gpb_...)."})
		return
	}
	if _, err := h.whoIs(r.Context(), tok); err != nil {
		h.render(w, r, http.StatusUnauthorized, "login", view{Title: "Log in", Error: "That token was not accepted: " + err.Error()})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: tok, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: 7 * 24 * 3600})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if s, err := h.session(r); err == nil && !h.checkCSRF(s, r) {
		http.Error(w, "bad form token; reload the page", http.StatusForbidden)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// apiErr is an answer of the API other than 2xx.
type apiErr struct {
	status int
	msg    string
}

func (e *apiErr) Error() string { return e.msg }

// memWriter collects an in-process API answer.
type memWriter struct {
	hdr  http.Header
	code int
	buf  bytes.Buffer
}

func (m *memWriter) Header() http.Header { return m.hdr }
func (m *memWriter) WriteHeader(c int) {
	if m.code == 0 {
		m.code = c
	}
}
func (m *memWriter) Write(b []byte) (int, error) {
	if m.code == 0 {
		m.code = http.StatusOK
	}
	return m.buf.Write(b)
}

// call makes one API request for the session and returns the body of a
// 2xx answer, or an *apiErr.
func (s *session) call(h http.Handler, method, path string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(s.r.Context(), method, path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	mw := &memWriter{hdr: http.Header{}}
	h.ServeHTTP(mw, req)
	if mw.code == 0 {
		mw.code = http.StatusOK
	}
	if mw.code/100 != 2 {
		var e api.ErrorBody
		msg := strings.TrimSpace(mw.buf.String())
		if json.Unmarshal(mw.buf.Bytes(), &e) == nil && e.Error != nil && e.Error.Message != "" {
			msg = e.Error.Message
		}
		return nil, &apiErr{status: mw.code, msg: fmt.Sprintf("%s %s: %s", method, path, msg)}
	}
	return mw.buf.Bytes(), nil
}

func (h *Handler) getJSON(s *session, path string, out any) error {
	b, err := s.call(h.cfg.API, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}
