package bastion_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

// The program reading the user's keys changes during a session: a shell
// started from the shell, a program that reads keys and hands the rest of
// the line back to the shell, an exit with keys typed across it. A refused
// command typed to whichever program then reads the keys must not run.
func TestGuardrailsNestedPrograms(t *testing.T) {
	testenv.Require(t, "tmux")
	testenv.Require(t, "less")
	testenv.Require(t, "vim")
	testenv.Require(t, "dash")
	e := newEnv(t, envOptions{extraYAML: `
rules:
  - {name: no-rm-rf, on: command, match: {command: "rm -rf *"}, action: block, unknowable: block}
`})
	dir := t.TempDir()
	file := filepath.Join(dir, "f.txt")
	os.WriteFile(file, []byte(strings.Repeat("a line of text\n", 100)), 0o644)
	n := 0
	// enter starts a program from the first shell and sets its prompt.
	enter := func(p *testenv.PTY, cmd, setPrompt string) {
		p.Type(cmd+"\r", keyGap)
		time.Sleep(1500 * time.Millisecond)
		p.Type(setPrompt+"\r", keyGap)
		p.Expect("P> ", 20*time.Second)
		time.Sleep(300 * time.Millisecond)
	}
	const bashPS1 = "PS1='P''> '"
	for _, c := range []struct {
		name string
		run  func(t *testing.T, p *testenv.PTY, v string)
	}{
		// Shells started from the shell: the inner one's lines are judged
		// (zsh and fish: othershells_test.go; exec of script, newgrp:
		// sshproto_test.go).
		{"bash --norc --noediting", func(t *testing.T, p *testenv.PTY, v string) {
			enter(p, "bash --norc --noediting", bashPS1)
			stopped(t, p, "rm -rf "+v+"\r")
		}},
		{"dash", func(t *testing.T, p *testenv.PTY, v string) {
			enter(p, "dash", bashPS1)
			stopped(t, p, "rm -rf "+v+"\r")
		}},
		{"su -", func(t *testing.T, p *testenv.PTY, v string) {
			enter(p, "su -", bashPS1)
			p.Type("cd "+dir+"\r", keyGap)
			p.Expect("P> ", 20*time.Second)
			stopped(t, p, "rm -rf "+v+"\r")
		}},
		// Keys typed across the end of an inner shell reach the outer one.
		{"exit then type-ahead", func(t *testing.T, p *testenv.PTY, v string) {
			enter(p, "bash --norc", bashPS1)
			p.Send("exit\rrm -rf " + v + "\r")
		}},
		{"ctrl-d then type-ahead", func(t *testing.T, p *testenv.PTY, v string) {
			enter(p, "bash --norc", bashPS1)
			p.Send("\x04rm -rf " + v + "\r")
		}},
		// A program that reads a key or two leaves the shell the rest of
		// the line.
		{"read -n 1", func(t *testing.T, p *testenv.PTY, v string) {
			p.Type("read -n 1 x\r", keyGap)
			time.Sleep(time.Second)
			p.Type("xrm -rf "+v+"\r", keyGap)
		}},
		{"read -n 1 typed ahead", func(t *testing.T, p *testenv.PTY, v string) {
			p.Send("sleep 1; read -n 1 x\r")
			time.Sleep(200 * time.Millisecond)
			p.Send("xrm -rf " + v + "\r")
		}},
		// bash builds the rest with Ctrl-A into rm -rf VICTIM; the keys
		// read as rm -rf 'VICTIM, an open quote.
		{"read -n 1 then ctrl-a", func(t *testing.T, p *testenv.PTY, v string) {
			p.Type("read -n 1 x\r", keyGap)
			time.Sleep(time.Second)
			p.Type("'"+v+"\x01rm -rf \r", keyGap)
			time.Sleep(time.Second)
			p.Send("\x03")
		}},
		{"read -s -n 1", func(t *testing.T, p *testenv.PTY, v string) {
			p.Type("read -s -n 1 x\r", keyGap)
			time.Sleep(time.Second)
			p.Type("xrm -rf "+v+"\r", keyGap)
		}},
		{"less q", func(t *testing.T, p *testenv.PTY, v string) {
			p.Type("less "+file+"\r", keyGap)
			time.Sleep(time.Second)
			p.Type("qrm -rf "+v+"\r", keyGap)
		}},
		{"less !", func(t *testing.T, p *testenv.PTY, v string) {
			p.Type("less "+file+"\r", keyGap)
			time.Sleep(time.Second)
			p.Type("!rm -rf "+v+"\r", keyGap)
			time.Sleep(time.Second)
			p.Type("q", keyGap)
		}},
		{"less |", func(t *testing.T, p *testenv.PTY, v string) {
			p.Type("less "+file+"\r", keyGap)
			time.Sleep(time.Second)
			p.Type("|.rm -rf "+v+"\r", keyGap)
			time.Sleep(time.Second)
			p.Type("q", keyGap)
		}},
		// Keys typed ahead across an editor's or a pager's exit reach the
		// shell after it.
		{"vim :q type-ahead", func(t *testing.T, p *testenv.PTY, v string) {
			p.Type("vim -u NONE "+file+"\r", keyGap)
			time.Sleep(1500 * time.Millisecond)
			p.Send(":q\rrm -rf " + v + "\r")
		}},
		{"less q type-ahead completion", func(t *testing.T, p *testenv.PTY, v string) {
			p.Type("less "+file+"\r", keyGap)
			time.Sleep(time.Second)
			p.Send("qrm -rf " + v + "\t\r")
		}},
		{"less ctrl-z", func(t *testing.T, p *testenv.PTY, v string) {
			p.Type("less "+file+"\r", keyGap)
			time.Sleep(time.Second)
			p.Send("\x1a")
			p.Expect("P> ", 20*time.Second)
			stopped(t, p, "rm -rf "+v+"\r")
			p.Type("fg\r", keyGap)
			time.Sleep(time.Second)
			p.Type("q", keyGap)
		}},
		{"tmux", func(t *testing.T, p *testenv.PTY, v string) {
			sock := filepath.Join(dir, "tmux.sock")
			enter(p, "tmux -S "+sock+" -f /dev/null new-session bash --norc", bashPS1)
			p.Type("rm -rf "+v+"\r", keyGap)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n++
			v := filepath.Join(dir, fmt.Sprintf("victim%d", n))
			os.MkdirAll(v, 0o755)
			p := e.shell(t)
			p.Send("cd " + dir + "\r")
			p.Expect("P> ", 20*time.Second)
			c.run(t, p, filepath.Base(v)) // typed relative to dir: fewer keys
			time.Sleep(2 * time.Second)
			if !exists(v) {
				t.Errorf("a refused command ran:\n%s", p.Output())
			}
		})
	}
}
