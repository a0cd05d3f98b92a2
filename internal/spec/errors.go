package spec

import (
	"fmt"
	"strings"
)

// Error is one problem in an input file: where it is (file, 1-based line,
// YAML field path) and what to do about it. Line is 0 when the problem has
// no single place (a field that is missing altogether is reported at its
// parent's line).
type Error struct {
	File string
	Line int
	Path string
	Msg  string
}

func (e *Error) Error() string { return position(e.File, e.Line, e.Path) + e.Msg }

// Errors is every problem found in one input, in file order. A parse
// returns Errors (never a bare *Error), so callers can list all problems:
//
//	var list spec.Errors
//	if errors.As(err, &list) { for _, e := range list { ... } }
//
// errors.As with a *Error target also works and finds the first one.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap exposes each *Error to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Warning is something accepted but not (yet) acted on, or accepted with a
// guess: a SkyPilot field gpubroker ignores, an unknown key, a null env
// value. The input still parses; a caller should show warnings to the user.
type Warning struct {
	File string
	Line int
	Path string
	Msg  string
}

func (w Warning) String() string { return position(w.File, w.Line, w.Path) + w.Msg }

func position(file string, line int, path string) string {
	var b strings.Builder
	if file != "" {
		b.WriteString(file)
		b.WriteString(":")
	}
	if line > 0 {
		fmt.Fprintf(&b, "%d:", line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if path != "" {
		b.WriteString(path)
		b.WriteString(": ")
	}
	return b.String()
}
