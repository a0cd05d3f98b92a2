//go:build race

package web_test

// raceEnabled widens the smoke bounds on page times under -race.
const raceEnabled = true
