package model

import (
	"errors"
	"fmt"
	"strings"
)

// FieldError says which field of an input is wrong and how to fix it.
// Path uses the YAML spelling with dots and indexes, e.g.
// "clusters[2].pools[0].gpus_per_node".
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// FieldErrors collects every problem found in one input, in the order found,
// so a user fixes a file in one pass rather than one error at a time.
type FieldErrors []*FieldError

func (es FieldErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Add records a problem at path.
func (es *FieldErrors) Add(path, format string, args ...any) {
	*es = append(*es, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Merge records err, prefixing the paths of any field errors inside it.
func (es *FieldErrors) Merge(prefix string, err error) {
	if err == nil {
		return
	}
	var list FieldErrors
	if errors.As(err, &list) {
		for _, e := range list {
			*es = append(*es, &FieldError{Path: joinPath(prefix, e.Path), Msg: e.Msg})
		}
		return
	}
	var one *FieldError
	if errors.As(err, &one) {
		*es = append(*es, &FieldError{Path: joinPath(prefix, one.Path), Msg: one.Msg})
		return
	}
	*es = append(*es, &FieldError{Path: prefix, Msg: err.Error()})
}

// Err returns nil when nothing was recorded, so callers can write
// `return errs.Err()`.
func (es FieldErrors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

func joinPath(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "":
		return prefix
	case strings.HasPrefix(path, "["):
		return prefix + path
	default:
		return prefix + "." + path
	}
}
