package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/store"
)

// ?tail=N answers the last N lines of the attempt's output; a bad N, or
// tail with follow, is refused naming the field.
func TestLogsTail(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	id := e.submit(e.admin, task(`for i in $(seq 1 1000); do echo "line $i"; done`))[0].ID
	e.waitState(id, 20*time.Second, store.Succeeded)
	code, body := e.do("GET", fmt.Sprintf("/v1/jobs/%d/logs?tail=3", id), e.admin, nil)
	if code != http.StatusOK || string(body) != "line 998\nline 999\nline 1000\n" {
		t.Errorf("tail=3: %d %q", code, body)
	}
	for _, q := range []string{"tail=0", "tail=x", "tail=10001", "tail=5&follow=1"} {
		code, body := e.do("GET", fmt.Sprintf("/v1/jobs/%d/logs?%s", id, q), e.admin, nil)
		if code != http.StatusBadRequest || !strings.Contains(string(body), `"field":"tail"`) {
			t.Errorf("%s: %d %s; want 400 naming tail", q, code, body)
		}
	}
}
