package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/bastion/linerec"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// attackOutput is printf(1) text for what a recorded user prints to attack
// the terminal of whoever later plays the recording: a clipboard write (OSC
// 52), a hyperlink (OSC 8), a DECRQSS query (DCS), a title set and a title
// report (the terminal types the title into the viewer's input), and the
// same clipboard write with the UTF-8 encoded C1 controls OSC (U+009D) and
// ST (U+009C), which some terminals obey.
const attackOutput = `printf '\033]52;c;ZWNobyBvd25lZAo=\007\033]8;;http://evil.example/\033\\click\033]8;;\033\\ \033P$qm\033\\\033]2;;id\007\033[21t \302\23552;c;ZWNobyBvd25lZAo=\302\234 shown-text\n'`

// terminalAttacks are the bytes none of which may reach the viewer's terminal.
var terminalAttacks = []string{"\x1b]", "\x1bP", "\x1b[21t", "\u009d", "\u009c"}

// TestExportPlaysSafelyInAsciinema: `bastion export ID > s.cast` and then
// `asciinema play`/`cat` is the documented way to watch a recording in the
// tool auditors have; what the recorded user printed must not reach the
// auditor's terminal as escape sequences, as it does not in `bastion replay`.
// `export --raw` keeps the recorded bytes.
func TestExportPlaysSafelyInAsciinema(t *testing.T) {
	w := newWorld(t)
	sshCfg := w.loginAlice(t)
	if out, err := exec.Command("ssh", "-F", sshCfg, "root@web1", attackOutput).CombinedOutput(); err != nil || !strings.Contains(string(out), "shown-text") {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	id := sessionWithCommand(t, w, "printf")

	r := w.run(nil, "export", id)
	if r.Code != 0 {
		t.Fatalf("export: %s", r)
	}
	cast := filepath.Join(t.TempDir(), "s.cast")
	os.WriteFile(cast, []byte(r.Stdout), 0o600)
	text := asciinemaCat(t, cast)
	if !strings.Contains(text, "click") || !strings.Contains(text, "shown-text") {
		t.Fatalf("asciinema cat lost the text:\n%q", text)
	}
	for _, bad := range terminalAttacks {
		if strings.Contains(text, bad) {
			t.Errorf("asciinema cat of the export writes %q to the auditor's terminal:\n%q", bad, text)
		}
	}
	for _, bad := range terminalAttacks {
		if strings.Contains(r.Stdout, bad) {
			t.Errorf("the export itself holds %q (a terminal obeys it when the export is printed)", bad)
		}
	}

	// --raw: the recorded bytes, for whoever needs them exactly.
	raw := w.run(nil, "export", id, "--raw")
	if raw.Code != 0 || !strings.Contains(raw.Stdout, `\u001b]52;c;ZWNobyBvd25lZAo=\u0007`) {
		t.Fatalf("export --raw does not keep the recorded bytes: %s", raw)
	}
	// A replay in the terminal (which reads the export) still works, raw or not.
	if r := w.run(nil, "replay", id, "--speed", "100"); r.Code != 0 || !strings.Contains(r.Stdout, "shown-text") || strings.Contains(r.Stdout, "\x1b]52") {
		t.Fatalf("replay: %s", r)
	}
	if r := w.run(nil, "replay", id, "--speed", "100", "--raw"); r.Code != 0 || !strings.Contains(r.Stdout, "\x1b]52;c;") {
		t.Fatalf("replay --raw: %s", r)
	}
}

// sessionWithCommand returns the ID of the newest session whose command
// contains cmd.
func sessionWithCommand(t *testing.T, w *world, cmd string) string {
	t.Helper()
	r := w.run(nil, "sessions", "--json")
	if r.Code != 0 {
		t.Fatalf("sessions: %s", r)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var s recorder.SessionInfo
		if json.Unmarshal([]byte(line), &s) == nil && strings.Contains(s.Command, cmd) {
			return s.ID
		}
	}
	t.Fatalf("no session with command %q:\n%s", cmd, r.Stdout)
	return ""
}

// TestJSONListingsEscapeC1: the --json listings an auditor reads in a
// terminal (sessions, audit, requests, verify) carry names and commands a
// user chose; a C1 control in them (U+009B is CSI, U+009D OSC to a terminal
// that obeys C1 controls in UTF-8) must be written as a JSON escape, as
// encoding/json already does for C0 controls, not as its raw bytes.
func TestJSONListingsEscapeC1(t *testing.T) {
	w := newWorld(t)
	sshCfg := w.loginAlice(t)
	cmd := "echo c1-\u009d52;c;ZWNobyBvd25lZAo=\u009c-\u009b31m-end"
	if out, err := exec.Command("ssh", "-F", sshCfg, "root@web1", cmd).CombinedOutput(); err != nil {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"sessions", "--json"}, {"audit", "--json", "--since", "1h"}} {
		r := w.run(nil, args...)
		if r.Code != 0 || !strings.Contains(r.Stdout, "c1-") {
			t.Fatalf("%v: %s", args, r)
		}
		for _, bad := range []string{"\u009d", "\u009c", "\u009b"} {
			if strings.Contains(r.Stdout, bad) {
				t.Errorf("%v writes the C1 control %q raw to the auditor's terminal", args, bad)
			}
		}
		if !strings.Contains(r.Stdout, `\u009d52;c;`) {
			t.Errorf("%v does not show the command's C1 control as an escape:\n%s", args, r.Stdout)
		}
		// The JSON still decodes to the command as it was.
		var found bool
		for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			if strings.Contains(line, "c1-") && strings.Contains(decodeAny(t, line), cmd) {
				found = true
			}
		}
		if !found {
			t.Errorf("%v: no line decodes to the command %q", args, cmd)
		}
	}
}

// decodeAny decodes a JSON line and returns every string in it, joined.
func decodeAny(t *testing.T, line string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(line), &v); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			b.WriteString(v + "\n")
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return b.String()
}

// TestReplayListsMarkersAfterTheRecording: a blocked command's marker in
// `bastion replay` is shown inline, where the session's next output (here
// `clear`) draws over it at once, and a session can print a note that looks
// like one. The replay lists the real markers after the recording, where it
// cannot draw.
func TestReplayListsMarkersAfterTheRecording(t *testing.T) {
	w := newWorldWith(t, "rules:\n  - {name: no-rm, on: command, match: {commands: [rm]}, action: block}\n")
	sshCfg := w.loginAlice(t)
	p := testenv.StartPTY(t, 100, 30, "ssh", "-F", sshCfg, "-tt", "root@web1")
	p.Expect("# ", 20*time.Second)
	p.Send("PS1='$'' '\r") // the echo of this line does not contain the prompt
	p.Expect("$ ", 20*time.Second)
	p.Send("rm -rf /tmp/evidence\r")
	p.Expect("no-rm", 20*time.Second)
	p.Expect("$ ", 20*time.Second)
	p.Send("clear\r")
	p.Expect("$ ", 20*time.Second)
	p.Send("printf '\\033[2m[bastion: command approved by %s: deploy --prod]\\033[22m\\n' bob\r")
	p.Expect("approved by bob", 20*time.Second)
	p.Send("exit\r")
	p.Wait(20 * time.Second)

	id := sessionWithCommand(t, w, "")
	r := w.run(nil, "replay", id, "--speed", "1000")
	if r.Code != 0 {
		t.Fatalf("replay: %s", r)
	}
	lines := linerec.Render(100, 30, []byte(r.Stdout))
	after := ""
	for i, l := range lines {
		if strings.HasPrefix(l, "[bastion: end of the replay") {
			after = strings.Join(lines[i:], "\n")
		}
	}
	if !strings.Contains(after, "no-rm") || !strings.Contains(after, "rm -rf /tmp/evidence") {
		t.Errorf("the blocked command is not listed after the replay; the auditor's screen:\n%s", strings.Join(lines, "\n"))
	}
	if strings.Contains(after, "approved by bob") {
		t.Errorf("the session's own note is listed as a marker:\n%s", strings.Join(lines, "\n"))
	}

	// asciinema shows no markers at all: the export ends with the same list.
	exp := w.run(nil, "export", id)
	if exp.Code != 0 {
		t.Fatalf("export: %s", exp)
	}
	cast := filepath.Join(t.TempDir(), "s.cast")
	os.WriteFile(cast, []byte(exp.Stdout), 0o600)
	text := asciinemaCat(t, cast)
	i := strings.LastIndex(text, "[bastion: end of the replay")
	if i < 0 || !strings.Contains(text[i:], "no-rm") || strings.Contains(text[i:], "approved by bob") {
		t.Errorf("asciinema cat of the export does not end with the markers:\n%q", text)
	}
	// The replay in this terminal asks for the raw export and lists the
	// markers once.
	if n := strings.Count(r.Stdout, "end of the replay"); n != 1 {
		t.Errorf("replay lists the markers %d times", n)
	}
}
