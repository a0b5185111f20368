//go:build race

package stack

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation counts mean nothing and allocation tests skip.
const raceEnabled = true
