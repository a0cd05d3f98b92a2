package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/server/view"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
)

// contextTimeout bounds store and backend calls made outside a request.
const contextTimeout = 30 * time.Second

func (s *Server) handleGetFleet(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	doc, version, err := s.store.GetFleet(r.Context())
	if errors.Is(err, store.ErrNotFound) {
		return notFound("no fleet was applied; the server runs its built-in local fleet (cluster %q: %d x %s on this machine)",
			view.LocalCluster, s.cfg.LocalGPUs, s.cfg.LocalGPU)
	}
	if err != nil {
		return internalError(err)
	}
	out := api.FleetDoc{Version: version, Fleet: doc}
	if ferr := s.ctl.FleetError(); ferr != nil {
		out.Error = ferr.Error()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handlePutFleet(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	if !p.admin() {
		return forbidden("applying a fleet needs an admin token")
	}
	var req api.FleetRequest
	if e := decodeBody(w, r, MaxFleetBody, &req); e != nil {
		return e
	}
	f, warns, err := spec.ParseFleetWith([]byte(req.Fleet), "fleet.yaml", spec.FleetOptions{Backends: s.cfg.FleetBackends})
	if err != nil {
		return specError(err)
	}
	version, err := s.store.PutFleet(r.Context(), req.Fleet, p.actor(), s.now().UTC())
	if err != nil {
		return internalError(err)
	}
	s.ctl.SetFleet(view.NewFleet(f, version, fmt.Sprintf("fleet v%d", version)))
	ws := make([]string, 0, len(warns))
	for _, wn := range warns {
		ws = append(ws, wn.String())
	}
	writeJSON(w, http.StatusOK, api.FleetApplied{Version: version, Warnings: ws})
	return nil
}
