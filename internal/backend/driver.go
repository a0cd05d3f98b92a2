package backend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"gpubroker/internal/model"
)

// Driver describes one backend driver to the program that wires it. Each
// driver package exports a function returning its Driver, and
// cmd/gpubroker lists them, once: nothing registers itself, and a build
// drives exactly the backends of that list.
//
// A new backend is its package (the Backend, this descriptor, its
// conformance test) plus one line in that list; the fleet parser, the CLI
// and the server know drivers only through this type.
type Driver struct {
	// Name is the value a fleet's clusters give as backend: ("slurm"),
	// lower case. A cluster's driver block, for a driver that takes one,
	// is the mapping under the same key (see model.Cluster.Target).
	Name string
	// Aliases are other spellings a fleet may give for Name ("k8s").
	Aliases []string
	// Check validates what only this driver reads of a cluster of its
	// backend, beyond model.Cluster.Validate: its driver block
	// (cl.Target) and how that fits the cluster and the fleet (pool
	// names, teams). It returns nil or a model.FieldErrors whose paths are
	// relative to the cluster ("NAME.endpoint"), so that the fleet parser
	// points each one at its file, line and field. It must not do I/O:
	// a fleet is checked where the cluster may not be reachable. Nil:
	// nothing to check.
	Check func(cl model.Cluster, f *model.Fleet) error
	// Open opens the backend of one cluster of the fleet. dir is a
	// directory of the broker's own for this cluster
	// (STATE_DIR/NAME/CLUSTER), for drivers that keep state on the
	// broker's machine; it may not exist yet. The caller closes the
	// backend (io.Closer) when it implements it.
	Open func(cl model.Cluster, dir string) (Backend, error)
}

// Names returns each driver's Name, in list order.
func Names(ds []Driver) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Name
	}
	return out
}

// DecodeTarget decodes a cluster's driver block (cl.Target, as JSON
// would hold it) into v, a pointer to the driver's own options type with
// json tags named as the block's keys. A key v has no field for, or a
// value of the wrong type, is a model.FieldErrors at "NAME" or
// "NAME.KEY", so a driver's Check can return it as is. A nil block
// leaves v unchanged.
func DecodeTarget(name string, cl model.Cluster, v any) error {
	if cl.Target == nil {
		return nil
	}
	data, err := json.Marshal(cl.Target)
	if err != nil {
		return model.FieldErrors{{Path: name, Msg: err.Error()}}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return model.FieldErrors{{Path: name + "." + te.Field, Msg: fmt.Sprintf("expected %s, got %s", te.Type, te.Value)}}
		}
		return model.FieldErrors{{Path: name, Msg: err.Error()}}
	}
	return nil
}
