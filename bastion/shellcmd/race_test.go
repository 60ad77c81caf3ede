//go:build race

package shellcmd

// The race detector enlarges stack frames (raceFactor) and slows deep
// parsing many times over, so TestStackBound checks the same per-level
// inequality at an eighth of the budget.
const (
	raceFactor     = 2
	stackTestScale = 8
)
