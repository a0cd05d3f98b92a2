// Package backendtest is the conformance suite every backend driver passes:
// Run submits real (short, bash) jobs through the backend.Backend contract
// and checks what Observe, Cancel, Logs and Forget report. It knows nothing
// of any driver; Options switch off what a driver cannot do. Subtests run
// in parallel and use short sleeps (the whole suite takes a few seconds on a
// local machine). Optional capabilities have tests of their own that
// skip when the driver lacks them: RunScaler (backend.Scaler, run by Run
// when Options.ScalePool names a pool it may scale). Only tests import it.
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, newDriver(t), backendtest.Options{MaxNodes: 2, GPUs: []int{0, 1}})
//	}
package backendtest
