package api

import (
	"net/http"
	"strings"
)

// Codes of Error (docs/api.md).
const (
	CodeInvalid      = "invalid"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeInternal     = "internal"
	// CodeUnavailable: the server cannot do it now (its state disk is
	// full, say); the same request may succeed later (503).
	CodeUnavailable = "unavailable"
)

// Error is a 4xx/5xx answer: {"error": {"code", "message", "field",
// "errors"}}. Client returns it (as *Error) for every such answer; test
// for a kind with errors.Is and the sentinels below, or read the fields
// with errors.As.
type Error struct {
	// Status is the HTTP status; it is not part of the body.
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the request field at fault, when one is.
	Field string `json:"field,omitempty"`
	// Errors lists every problem of a task or fleet file with several
	// (file:line: path: message each); Message is then the first.
	Errors []string `json:"errors,omitempty"`
}

// ErrorBody is the envelope an Error travels in.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Error is the message, prefixed by the field when the message does not
// name it; a file with several problems gives one line each.
func (e *Error) Error() string {
	if len(e.Errors) > 1 {
		return strings.Join(e.Errors, "\n")
	}
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Field != "" && !strings.Contains(msg, e.Field) {
		msg = e.Field + ": " + msg
	}
	return msg
}

// kind is a sentinel error: an Error is it when its status matches.
type kind struct {
	name   string
	status []int
}

func (k *kind) Error() string { return k.name }

// Sentinels for errors.Is: errors.Is(err, api.ErrNotFound) holds for a 404
// answer, whatever its message.
var (
	ErrInvalid      error = &kind{"invalid request", []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge}}
	ErrUnauthorized error = &kind{"unauthorized", []int{http.StatusUnauthorized}}
	ErrForbidden    error = &kind{"forbidden", []int{http.StatusForbidden}}
	ErrNotFound     error = &kind{"not found", []int{http.StatusNotFound}}
	ErrConflict     error = &kind{"conflict", []int{http.StatusConflict}}
	// ErrUnavailable is a server or proxy that could not answer now
	// (502, 503, 504): the same request may succeed when repeated.
	ErrUnavailable error = &kind{"server unavailable", []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}}
)

// Is makes errors.Is(e, ErrNotFound) and its kin work.
func (e *Error) Is(target error) bool {
	k, ok := target.(*kind)
	if !ok {
		return false
	}
	for _, s := range k.status {
		if e.Status == s {
			return true
		}
	}
	return false
}
