package web

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The CSRF key is asked for at the first page that needs one: a failure
// (the store down) is a 503 saying so, not a logout, and the next page
// asks again; once had, the key is kept.
func TestCSRFKeyFailureIs503AndRetried(t *testing.T) {
	t.Parallel()
	calls := 0
	h := New(Config{
		API:    http.NotFoundHandler(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Who:    func(*http.Request) (Principal, error) { return Principal{Team: "lab", Role: "viewer"}, nil },
		CSRFKey: func(context.Context) ([]byte, error) {
			calls++
			if calls == 1 {
				return nil, errors.New("store unavailable")
			}
			return []byte("shared key"), nil
		},
	})
	mux := http.NewServeMux()
	h.Register(mux)
	get := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/contracts", nil)
		req.AddCookie(&http.Cookie{Name: cookieName, Value: "gpb_x"})
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}
	if rec := get(); rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "store unavailable") {
		t.Errorf("page while the key cannot be had: %d; want 503 saying why", rec.Code)
	}
	if rec := get(); rec.Code == http.StatusServiceUnavailable || rec.Code == http.StatusUnauthorized {
		t.Errorf("page once the key can be had: %d", rec.Code)
	}
	get()
	if calls != 2 {
		t.Errorf("CSRFKey asked %d times; want 2 (a failure, then once for good)", calls)
	}
	want, _ := h.csrfFor(context.Background(), "gpb_x")
	if got := csrfWith([]byte("shared key"), "gpb_x"); got != want {
		t.Errorf("form token %q; want the HMAC under the shared key %q", want, got)
	}
}

// csrfWith is the form token of token under key, computed here.
func csrfWith(key []byte, token string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("csrf\x00" + token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
