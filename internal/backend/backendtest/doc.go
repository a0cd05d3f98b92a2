// Package backendtest is the conformance suite every backend driver passes:
// Run submits real (short, bash) jobs through the backend.Backend contract
// and checks what Observe, Cancel, Logs and Forget report. It knows nothing
// of any driver; Options switch off what a driver cannot do. Only tests
// import it.
package backendtest
