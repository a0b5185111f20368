//go:build !race

package udpnat

const raceEnabled = false
