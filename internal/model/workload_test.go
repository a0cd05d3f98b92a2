package model

import (
	"reflect"
	"testing"
)

// Clone must copy every field that holds a reference; this test lists
// them, so that a new one fails here until Clone copies it.
func TestWorkloadCloneCopiesEveryReference(t *testing.T) {
	copied := map[string]bool{"Options": true, "Envs": true, "FileMounts": true, "Service": true, "AvoidRegions": true}
	typ := reflect.TypeFor[Workload]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		switch f.Type.Kind() {
		case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface, reflect.Chan, reflect.Func:
			if !copied[f.Name] {
				t.Errorf("Workload.%s holds a reference that Clone does not copy: copy it in Clone and list it here", f.Name)
			}
		}
	}

	w := &Workload{
		ID: "1", Options: []Resources{{GPU: "H100", GPUsPerNode: 8}}, Envs: map[string]string{"A": "1"},
		FileMounts: map[string]string{"/d": "s3://b"}, Service: &ServiceSpec{Port: 80}, AvoidRegions: []string{"us-east-1"},
	}
	c := w.Clone()
	if !reflect.DeepEqual(w, c) {
		t.Fatalf("Clone = %+v, want %+v", c, w)
	}
	c.Options[0].GPUsPerNode = 1
	c.Envs["A"] = "2"
	c.FileMounts["/d"] = "x"
	c.Service.Port = 81
	c.AvoidRegions[0] = "eu-west-1"
	if w.Options[0].GPUsPerNode != 8 || w.Envs["A"] != "1" || w.FileMounts["/d"] != "s3://b" || w.Service.Port != 80 ||
		w.AvoidRegions[0] != "us-east-1" {
		t.Errorf("changing the clone changed the original: %+v", w)
	}
	if (*Workload)(nil).Clone() != nil {
		t.Error("nil.Clone() != nil")
	}
}
