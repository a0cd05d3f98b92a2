package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"gpubroker/internal/api"
	"gpubroker/internal/model"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
)

// Error codes of the API (docs/api.md).
const (
	codeInvalid      = api.CodeInvalid
	codeUnauthorized = api.CodeUnauthorized
	codeForbidden    = api.CodeForbidden
	codeNotFound     = api.CodeNotFound
	codeConflict     = api.CodeConflict
	codeInternal     = api.CodeInternal
	codeUnavailable  = api.CodeUnavailable
)

// apiError is a 4xx/5xx answer, written as api.Error.
type apiError struct {
	Status  int
	Code    string
	Message string
	Field   string
	// Errors lists every problem of a spec or fleet file (file:line:
	// path: message each) when there are several; Message is the first.
	Errors []string
	// cause is what the server logs for an internal error.
	cause error
}

func (e *apiError) Error() string { return e.Message }

func invalid(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: codeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusForbidden, Code: codeForbidden, Message: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: fmt.Sprintf(format, args...)}
}

// internalError hides err's text from the client: it may name paths or
// SQL. The handler logs it.
func internalError(err error) *apiError {
	return &apiError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error; the server log says more", cause: err}
}

// diskFull is the answer to a write the store refused for want of disk
// space: 503, as the same request succeeds once space is freed.
func diskFull(err error) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, cause: err,
		Message: "the broker's state disk is full, so nothing new can be accepted: free space on the disk that holds its " +
			"database (the state directory, or the database server's), then retry; work accepted before is kept"}
}

// specError turns a parse error of a task or fleet file into a 400 that
// names the first field at fault and lists every problem.
func specError(err error) *apiError {
	var list spec.Errors
	if errors.As(err, &list) && len(list) > 0 {
		e := &apiError{Status: http.StatusBadRequest, Code: codeInvalid, Field: list[0].Path, Message: list[0].Error()}
		if len(list) > 1 {
			for _, one := range list {
				e.Errors = append(e.Errors, one.Error())
			}
			e.Message = fmt.Sprintf("%s (and %d more problems)", list[0].Error(), len(list)-1)
		}
		return e
	}
	var fe model.FieldErrors
	if errors.As(err, &fe) && len(fe) > 0 {
		return invalid(fe[0].Path, "%s", err.Error())
	}
	return invalid("", "%s", err.Error())
}

// storeError maps a store error kind onto an API error.
func storeError(err error, what string) *apiError {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("%s not found", what)
	case errors.Is(err, store.ErrConflict):
		return &apiError{Status: http.StatusConflict, Code: codeConflict, Message: what + " changed concurrently; retry"}
	case errors.Is(err, store.ErrInvalid):
		return invalid("", "%s: %v", what, err)
	case errors.Is(err, store.ErrFull):
		return diskFull(err)
	}
	return internalError(err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		writeError(w, internalError(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

func writeError(w http.ResponseWriter, e *apiError) {
	data, _ := json.Marshal(api.ErrorBody{Error: &api.Error{Code: e.Code, Message: e.Message, Field: e.Field, Errors: e.Errors}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	w.Write(append(data, '\n'))
}

// Body size limits.
const (
	MaxSpecBody  = 1 << 20 // a task file with its JSON envelope
	MaxFleetBody = 8 << 20 // fleets with thousands of clusters
)

// decodeBody reads a JSON object into v: at most limit bytes, no unknown
// fields, one value. Errors name the field when there is one.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) *apiError {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return invalid("", "Content-Type %q: send application/json", ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, limit)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("", "the body holds more than one JSON value; send one object")
	}
	return nil
}

func jsonError(err error, limit int64) *apiError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var big *http.MaxBytesError
	switch {
	case errors.As(err, &big):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeInvalid,
			Message: fmt.Sprintf("the request body is over %d bytes", limit)}
	case errors.As(err, &syn):
		return invalid("", "the body is not valid JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		return invalid(typ.Field, "%s: expected %s, got JSON %s", typ.Field, typ.Type, typ.Value)
	case errors.Is(err, io.EOF):
		return invalid("", "the body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "the body ends in the middle of a JSON value")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return invalid(f, "unknown field %q", f)
	}
	return invalid("", "%s", msg)
}
