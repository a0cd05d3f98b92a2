package control

import "gpubroker/internal/server/view"

// currentView is the last round's view when it was made against the
// current fleet, else a fresh one with everything free.
func (s *Controller) currentView() *view.Round {
	fs := s.fleet.Load()
	if v := s.view.Load(); v != nil && v.Fleet == fs {
		return v
	}
	return &view.Round{At: s.now().UTC(), Fleet: fs, Snap: buildSnapshot(fs.Fleet, nil, nil, newUsageSnapshot(), realNodes)}
}
