package httpapi

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestOpenAPIListsEveryRoute(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	var inDoc, served []string
	for p, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			inDoc = append(inDoc, strings.ToUpper(m)+" "+p)
		}
	}
	served = append(served, "GET /healthz")
	for _, rt := range (&Server{}).apiRoutes() {
		served = append(served, rt.method+" "+rt.path)
	}
	sort.Strings(inDoc)
	sort.Strings(served)
	if diff := cmp.Diff(served, inDoc); diff != "" {
		t.Errorf("routes served vs in openapi.json (-served +documented):\n%s", diff)
	}
}
