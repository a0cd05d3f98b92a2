package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// WriteJSON writes r as indented JSON followed by a newline. Map keys come
// out sorted, so the same Report always gives the same bytes. It fails on a
// nil Report and on NaN or infinite numbers, which JSON cannot carry.
func WriteJSON(w io.Writer, r *Report) error {
	if r == nil {
		return errors.New("report: nil Report")
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report: encoding JSON: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}
