package player

import (
	"fmt"

	"golang.org/x/term"
)

// MakeRaw puts the terminal on file descriptor fd in raw mode, so that single key
// presses reach Play through Options.Keys, and returns a function that restores
// the previous mode. It fails when fd is not a terminal.
func MakeRaw(fd int) (restore func() error, err error) {
	if !term.IsTerminal(fd) {
		return nil, fmt.Errorf("%w: file descriptor %d", ErrNotTerminal, fd)
	}
	st, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("player: raw mode: %w", err)
	}
	return func() error {
		if err := term.Restore(fd, st); err != nil {
			return fmt.Errorf("player: restore terminal: %w", err)
		}
		return nil
	}, nil
}
