//go:build !race

package shellcmd

// Without the race detector TestStackBound checks the budget itself.
const (
	raceFactor     = 1
	stackTestScale = 1
)
