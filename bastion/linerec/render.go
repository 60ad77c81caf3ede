package linerec

import "strings"

// Render runs output through this package's emulator on a cols x rows
// window (clamped as a Tracker's) and returns the screen's rows as text,
// trailing blanks and blank rows at the bottom trimmed. It keeps
// characters only: no colours, and nothing of what a full-screen program
// draws on the alternate screen. The web console shows it as a
// recording's first screen before its player has started.
func Render(cols, rows int, output []byte) []string {
	s := newScreen(cols, rows)
	s.write(output)
	lines := make([]string, s.rows)
	last := 0
	for y := range s.rows {
		lines[y] = strings.TrimRight(s.line(y).text(0, s.cols), " ")
		if lines[y] != "" {
			last = y + 1
		}
	}
	return lines[:last]
}
