package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// cliRun runs the CLI (this test binary) with args and no login.
func cliRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "BASTION_TEST_AS_CLI=1", "HOME="+home, "XDG_CONFIG_HOME="+home+"/.config", "SSH_AUTH_SOCK=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestHelpForEveryCommand: every command answers --help (and -h) with its
// own usage on stdout and exit status 0, without a login; the usage line
// agrees with the overview's.
func TestHelpForEveryCommand(t *testing.T) {
	overview, _, code := cliRun(t, "--help")
	if code != 0 {
		t.Fatalf("bastion --help: exit %d", code)
	}
	names := []string{"ca export", "ca init", "ca revoke", "config check", "targets hostkey"}
	for _, c := range commands() {
		names = append(names, c.name)
	}
	for _, name := range names {
		for _, flag := range []string{"--help", "-h"} {
			t.Run(name+" "+flag, func(t *testing.T) {
				out, errOut, code := cliRun(t, append(strings.Fields(name), flag)...)
				if code != 0 {
					t.Fatalf("exit %d, want 0; stderr %q", code, errOut)
				}
				if !strings.HasPrefix(out, "Usage: bastion "+name) {
					t.Fatalf("got %q, want its own usage on stdout", out)
				}
				for _, bad := range []string{"Usage of ", "no session", "unknown"} {
					if strings.Contains(out+errOut, bad) {
						t.Errorf("got %q / %q, want no %q", out, errOut, bad)
					}
				}
				// The overview shows the same synopsis as the command.
				usageLine, _, _ := strings.Cut(out, "\n")
				args := strings.TrimSpace(strings.TrimPrefix(usageLine, "Usage: bastion "+name))
				if !strings.Contains(name, " ") && args != "" && !strings.Contains(overview, "bastion "+name) {
					t.Errorf("the overview does not list %s", name)
				}
				if c := findCommand(name); c != nil && c.usage != args && !strings.HasPrefix(args, c.usage) {
					t.Errorf("overview synopsis %q, --help says %q", c.usage, args)
				}
			})
		}
	}
}

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return &c
		}
	}
	return nil
}

// TestBadFlagsExit2: a wrong flag says what is wrong and how the command
// is used, on stderr, with exit status 2.
func TestBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{{"login", "--nope"}, {"replay", "--speed"}, {"serve"}, {"version", "x"}, {"ca"}, {"config"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, errOut, code := cliRun(t, args...)
			if code != 2 || out != "" || !strings.Contains(errOut, "Usage: bastion "+args[0]) {
				t.Errorf("got exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", code, out, errOut)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct{ name, err, want string }{
		{"login", "login: ask the bastion: HTTP 404", "ask the bastion: HTTP 404"},
		{"sessions", "bastion: sessions: --since: bad", "--since: bad"},
		{"login", "bastion: bastion: refused", "refused"},
		{"export", "no session", "no session"},
		{"config", "config: a\nconfig: b", "config: a\nconfig: b"},
		// What a bastion or an IdP answered (a phishing URL's) reaches
		// the terminal with its control characters escaped.
		{"login", "login: certificate: \x1b]52;c;Y3VybA==\x07denied\u009b2J (HTTP 401)", `certificate: \x1b]52;c;Y3VybA==\adenied\u009b2J (HTTP 401)`},
	}
	for _, tc := range tests {
		if got := errorText(tc.name, errString(tc.err)); got != tc.want {
			t.Errorf("errorText(%q, %q): got %q, want %q", tc.name, tc.err, got, tc.want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
