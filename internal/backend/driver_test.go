package backend

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/model"
)

func TestDecodeTarget(t *testing.T) {
	t.Parallel()
	type opts struct {
		Endpoint string   `json:"endpoint"`
		Images   []string `json:"images"`
		Spot     bool     `json:"spot"`
	}
	tests := map[string]struct {
		target  map[string]any
		want    opts
		wantErr string
	}{
		"none":    {want: opts{Endpoint: "kept"}},
		"decoded": {target: map[string]any{"endpoint": "https://vm", "images": []any{"a"}, "spot": true}, want: opts{Endpoint: "https://vm", Images: []string{"a"}, Spot: true}},
		"unknown": {target: map[string]any{"endpiont": "x"}, want: opts{Endpoint: "kept"}, wantErr: `vm: json: unknown field "endpiont"`},
		"type":    {target: map[string]any{"spot": "yes"}, want: opts{Endpoint: "kept"}, wantErr: "vm.spot: expected bool, got string"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := opts{Endpoint: "kept"}
			err := DecodeTarget("vm", model.Cluster{Target: tc.target}, &got)
			var fe model.FieldErrors
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("DecodeTarget: %v", err)
			case tc.wantErr != "" && (!errors.As(err, &fe) || err.Error() != tc.wantErr):
				t.Fatalf("DecodeTarget: %v, want FieldErrors %q", err, tc.wantErr)
			case tc.wantErr == "":
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("options (-want +got):\n%s", diff)
				}
			}
		})
	}
}
