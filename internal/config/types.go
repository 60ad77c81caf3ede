package config

import (
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bastionhq/bastion/internal/duration"
)

// Duration is a time.Duration written as in Go ("90s", "5m", "1h30m") with
// one addition: a "d" suffix for days ("90d"). Set records whether the file
// gave a value, so "0s" can mean "disabled" where a default would apply.
type Duration struct {
	D   time.Duration
	Set bool
}

// ParseDuration parses a Duration (see package duration).
func ParseDuration(s string) (time.Duration, error) { return duration.Parse(s) }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return badValue(n, "want a duration such as 30s, 5m, 1h or 90d")
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return &valueError{Line: n.Line, Column: n.Column, Err: err}
	}
	d.D, d.Set = v, true
	return nil
}

// ByteSize is a size such as "512KiB", "64MiB", "1GiB" or a plain number.
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return badValue(n, "want a size such as 64MiB")
	}
	s := strings.TrimSpace(n.Value)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(v), u.m
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return badValue(n, "%q is not a size such as 64MiB", n.Value)
	}
	*b = ByteSize(v * mult)
	return nil
}
