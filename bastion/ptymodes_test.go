package bastion

import (
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// encodeModes encodes modes in the given order, as a client sends them.
func encodeModes(modes [][2]uint32) string {
	var b []byte
	for _, m := range modes {
		b = append(b, byte(m[0]), byte(m[1]>>24), byte(m[1]>>16), byte(m[1]>>8), byte(m[1]))
	}
	return string(append(b, 0))
}

func TestNormalizePtyModes(t *testing.T) {
	// What OpenSSH's client sends from a Linux terminal in its default
	// state (stty sane, UTF-8): all of it passes.
	stock := [][2]uint32{
		{1, 3}, {2, 0x1c}, {3, 0x7f}, {4, 0x15}, {5, 4}, {6, 255}, {7, 255}, {8, 0x11}, {9, 0x13},
		{10, 0x1a}, {12, 0x12}, {13, 0x17}, {14, 0x16}, {18, 0x0f},
		{30, 0}, {31, 0}, {32, 0}, {33, 0}, {34, 0}, {35, 0}, {36, 1}, {37, 0}, {38, 1}, {39, 0}, {40, 0}, {41, 1}, {42, 1},
		{50, 1}, {51, 1}, {52, 0}, {53, 1}, {54, 1}, {55, 1}, {56, 0}, {57, 0}, {58, 0}, {59, 1}, {60, 1}, {61, 1}, {62, 0},
		{70, 1}, {71, 0}, {72, 1}, {73, 0}, {74, 0}, {75, 0},
		{90, 1}, {91, 1}, {92, 0}, {93, 0}, {128, 38400}, {129, 38400},
	}
	in := encodeModes(stock)
	out, dropped := normalizePtyModes(in)
	if out != in || len(dropped) != 0 {
		t.Errorf("stock modes changed: dropped %v", dropped)
	}
	// Backspace sending ^H; macOS's ECHOK off; stty stop undef.
	in = encodeModes([][2]uint32{{3, 8}, {55, 0}, {9, 255}})
	if out, dropped := normalizePtyModes(in); out != in || len(dropped) != 0 {
		t.Errorf("^H erase, ECHOK off, stop undef: dropped %v", dropped)
	}
	if out, dropped := normalizePtyModes(""); out != "\x00" || len(dropped) != 0 {
		t.Errorf("no modes: %q, dropped %v", out, dropped)
	}
	for _, tc := range []struct {
		name  string
		modes [][2]uint32
		want  string
	}{
		{"IUCLC", [][2]uint32{{uint32(gossh.IUCLC), 1}}, "IUCLC=1"},
		{"OLCUC", [][2]uint32{{uint32(gossh.OLCUC), 1}}, "OLCUC=1"},
		{"printable erase", [][2]uint32{{uint32(gossh.VERASE), 'Q'}}, "VERASE=81"},
		{"kill", [][2]uint32{{uint32(gossh.VKILL), '#'}}, "VKILL=35"},
		{"interrupt moved", [][2]uint32{{uint32(gossh.VINTR), 0x14}}, "VINTR=20"},
		{"interrupt disabled", [][2]uint32{{uint32(gossh.VINTR), 255}}, "VINTR=255"},
		{"interrupt NUL", [][2]uint32{{uint32(gossh.VINTR), 0}}, "VINTR=0"},
		{"end of line", [][2]uint32{{uint32(gossh.VEOL), 'x'}}, "VEOL=120"},
		{"no signals", [][2]uint32{{uint32(gossh.ISIG), 0}}, "ISIG=0"},
		{"no flush", [][2]uint32{{uint32(gossh.NOFLSH), 1}}, "NOFLSH=1"},
		{"ignore CR", [][2]uint32{{uint32(gossh.IGNCR), 1}}, "IGNCR=1"},
		{"no output processing", [][2]uint32{{uint32(gossh.OPOST), 0}}, "OPOST=0"},
		{"raw input", [][2]uint32{{uint32(gossh.ICANON), 0}}, "ICANON=0"},
		{"echo off", [][2]uint32{{uint32(gossh.ECHO), 0}}, "ECHO=0"},
		{"controls echoed raw", [][2]uint32{{uint32(gossh.ECHOCTL), 0}}, "ECHOCTL=0"},
		{"7-bit", [][2]uint32{{uint32(gossh.CS8), 0}, {uint32(gossh.CS7), 1}}, "CS8=0"},
		{"unknown opcode", [][2]uint32{{99, 1}}, "opcode 99=1"},
		{"undefined opcode stops", [][2]uint32{{200, 1}, {53, 1}}, "opcode 200 and what follows"},
	} {
		out, dropped := normalizePtyModes(encodeModes(append([][2]uint32{{53, 1}}, tc.modes...)))
		if !strings.Contains(strings.Join(dropped, " "), tc.want) {
			t.Errorf("%s: dropped %v, want %s", tc.name, dropped, tc.want)
		}
		if !strings.HasPrefix(out, encodeModes([][2]uint32{{53, 1}})[:5]) || out[len(out)-1] != 0 {
			t.Errorf("%s: the modes that pass were lost: %q", tc.name, out)
		}
	}
	// A truncated entry ends the list.
	if out, dropped := normalizePtyModes("\x35\x00\x00"); out != "\x00" || len(dropped) != 1 {
		t.Errorf("truncated: %q, dropped %v", out, dropped)
	}
}
