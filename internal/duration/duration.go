// Package duration parses the durations the bastion's config and command
// line take: Go's units ("90s", "5m", "1h30m") and days ("90d").
package duration

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Parse parses a duration such as 30s, 5m, 1h30m or 90d. Negative
// durations and more than a century of days are refused.
func Parse(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || !(n >= 0 && n <= 100*365) { // NaN fails too
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 30s, 5m, 1h or 90d", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}
