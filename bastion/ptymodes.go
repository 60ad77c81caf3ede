package bastion

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/bastionhq/bastion/bastion/shellcmd"
)

// Terminal modes of a pty-req (RFC 4254 §8) decide how the target's tty
// turns the keys the guard watches into the characters the shell reads,
// and how the shell's echo is drawn: the guard reads a line off both. A
// client is free to send any of them (OpenSSH's client sends those of its
// local terminal, a custom client whatever it likes), so modes that the
// guard cannot follow never reach the target:
//
//   - case folding: IUCLC (typed RM -RF reaches bash as rm -rf), OLCUC
//     (the echo of rm -rf shows as RM -RF), XCASE;
//   - control characters moved off their usual keys: a printable VERASE
//     or VKILL edits the line where the keys read as text (#, then an erase
//     character Q, reads as a comment and runs what follows), a VINTR other
//     than Ctrl-C leaves the Ctrl-C that cancels a refused line in it, and
//     VEOL and VEOL2 end lines on another key;
//   - input translation and stripping: INLCR, IGNCR, ISTRIP, PARMRK, and
//     a character size below 8 bits;
//   - what keeps a refused line's characters or stops them from being
//     cancelled: ISIG or IEXTEN off, NOFLSH, PENDIN;
//   - output translation that changes the bytes drawn: OCRNL, ONOCR,
//     ONLRET, and OPOST or ONLCR off (line feeds without a carriage
//     return);
//   - ICRNL and ICANON off, which change where a line typed while a
//     command runs ends;
//   - echo off (ECHO, ECHOCTL, ECHOE, ECHOKE): a shell without a line
//     editor (dash) reads the line the tty cooked, arrow keys included as
//     bytes, which the screen shows (as ^[[D) only with these on: without
//     ECHOCTL the echoed arrows move the cursor and the screen, like keys
//     read as readline's, shows another line than dash runs.
//
// What is dropped leaves the target's default (a new pty's: Ctrl-C
// interrupts, Backspace erases, no case folding), which is what the guard
// models. The rest (flow control, IUTF8, ECHOK, ECHONL, speeds) passes as
// sent: they change no character the shell reads or the screen shows.

// Terminal mode opcodes (RFC 4254 §8, RFC 8160).
const (
	ttyOpEnd    = 0
	ttyOpString = 160 // 160 and above: undefined, parsing stops (RFC 4254)
)

// A control character of 255 is a disabled one (OpenSSH sends
// _POSIX_VDISABLE as 255, and sshd turns 255 back into it); 0 is disabled
// on Linux. Only characters that change no line may be disabled.

// ptyModeRule says which values of a mode pass; nil: any value.
type ptyModeRule struct {
	name   string
	values []uint32
}

var ptyModeRules = map[byte]ptyModeRule{
	1: {"VINTR", []uint32{0x03}},
	2: {"VQUIT", []uint32{0x1c}},
	3: {"VERASE", []uint32{0x7f, 0x08}},
	4: {"VKILL", []uint32{0x15}},
	5: {"VEOF", []uint32{0x04}},
	6: {"VEOL", []uint32{0, 255}},
	7: {"VEOL2", []uint32{0, 255}},
	// Flow control's keys may be disabled (stty stop undef, to have
	// Ctrl-S reach readline): Ctrl-Q and Ctrl-S then reach the shell as
	// keys, as they do after stty -ixon on the target, which the guard
	// follows anyway.
	8:  {"VSTART", []uint32{0x11, 0, 255}},
	9:  {"VSTOP", []uint32{0x13, 0, 255}},
	10: {"VSUSP", []uint32{0x1a}},
	11: {"VDSUSP", []uint32{0x19, 0, 255}},
	12: {"VREPRINT", []uint32{0x12}},
	13: {"VWERASE", []uint32{0x17}},
	14: {"VLNEXT", []uint32{0x16}},
	15: {"VFLUSH", []uint32{0x0f, 0, 255}},
	16: {"VSWTCH", []uint32{0, 255}},
	17: {"VSTATUS", []uint32{0x14, 0, 255}},
	18: {"VDISCARD", []uint32{0x0f, 0, 255}},
	30: {"IGNPAR", nil},
	31: {"PARMRK", []uint32{0}},
	32: {"INPCK", nil},
	33: {"ISTRIP", []uint32{0}},
	34: {"INLCR", []uint32{0}},
	35: {"IGNCR", []uint32{0}},
	36: {"ICRNL", []uint32{1}},
	37: {"IUCLC", []uint32{0}},
	38: {"IXON", nil},
	39: {"IXANY", nil},
	40: {"IXOFF", nil},
	41: {"IMAXBEL", nil},
	42: {"IUTF8", nil},
	50: {"ISIG", []uint32{1}},
	51: {"ICANON", []uint32{1}},
	52: {"XCASE", []uint32{0}},
	53: {"ECHO", []uint32{1}},
	54: {"ECHOE", []uint32{1}},
	55: {"ECHOK", nil},
	56: {"ECHONL", nil},
	57: {"NOFLSH", []uint32{0}},
	58: {"TOSTOP", nil},
	59: {"IEXTEN", []uint32{1}},
	60: {"ECHOCTL", []uint32{1}},
	61: {"ECHOKE", []uint32{1}},
	62: {"PENDIN", []uint32{0}},
	70: {"OPOST", []uint32{1}},
	71: {"OLCUC", []uint32{0}},
	72: {"ONLCR", []uint32{1}},
	73: {"OCRNL", []uint32{0}},
	74: {"ONOCR", []uint32{0}},
	75: {"ONLRET", []uint32{0}},
	// OpenSSH's client sends CS7 as set for an 8-bit terminal (CS8
	// includes CS7's bit), and sshd sets or clears those bits in turn: CS7
	// or CS8 cleared shrinks the character size.
	90:  {"CS7", []uint32{1}},
	91:  {"CS8", []uint32{1}},
	92:  {"PARENB", []uint32{0}},
	93:  {"PARODD", nil},
	128: {"TTY_OP_ISPEED", nil},
	129: {"TTY_OP_OSPEED", nil},
}

// normalizePtyModes returns the encoded terminal modes with every mode the
// guard cannot follow left out (see ptyModeRules), and what was left out.
// A truncated entry, an undefined opcode and everything after either are
// left out too.
func normalizePtyModes(modes string) (string, []string) {
	var out strings.Builder
	var dropped []string
	b := []byte(modes)
	for len(b) > 0 {
		op := b[0]
		if op == ttyOpEnd {
			break
		}
		if op >= ttyOpString || len(b) < 5 {
			dropped = append(dropped, fmt.Sprintf("opcode %d and what follows", op))
			break
		}
		v := binary.BigEndian.Uint32(b[1:5])
		entry := b[:5]
		b = b[5:]
		rule, known := ptyModeRules[op]
		if !known {
			dropped = append(dropped, fmt.Sprintf("opcode %d=%d", op, v))
			continue
		}
		if rule.values != nil && !containsU32(rule.values, v) {
			dropped = append(dropped, fmt.Sprintf("%s=%d", rule.name, v))
			continue
		}
		out.Write(entry)
	}
	out.WriteByte(ttyOpEnd)
	return out.String(), dropped
}

func containsU32(vs []uint32, v uint32) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// The terminal type (a pty-req's TERM) picks the sequences readline draws
// the line with, from the target's terminfo, and the guard reads the screen
// with an xterm-like emulator: only shellcmd.ScreenTerms pass (vt52 moves
// the cursor left with ESC D, a line feed to xterm, and clears a line's end
// with ESC K, which xterm does not know, so a killed quote stays on the
// screen; dumb, a type the target has no terminfo for, or none, scrolls a
// long line sideways, so the screen shows its tail alone). Any other is
// replaced by defaultTerm, which terminals that are not among them (kitty,
// alacritty, foot, ...) emulate.
const defaultTerm = "xterm-256color"

// screenTerm returns the terminal type the target gets for term.
func screenTerm(term string) string {
	if shellcmd.ScreenTerms[term] {
		return term
	}
	return defaultTerm
}
