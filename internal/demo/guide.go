package demo

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
)

// GuideOptions says how the guide names the bastion command.
type GuideOptions struct {
	// CLI is how to run the bastion command; empty means "bastion".
	CLI string
	// PathDir, when set, is a directory to put first on PATH so that CLI is
	// found (after `make demo` the binary is in bin/, not on PATH); the
	// guide starts with that export.
	PathDir string
}

// CommandPrefix starts every line of the guide that is a command to type,
// exactly as it must be typed after the prefix.
const CommandPrefix = "  $ "

// Placeholders in guide commands that the person fills in from an earlier
// command's output.
const (
	PlaceholderSession = "SESSION-ID"
	PlaceholderRequest = "REQUEST-ID"
)

// Guide is what to type next, in order, each command on a line of its own
// starting with CommandPrefix. Every command works as printed (placeholders
// aside) from any directory, in a second terminal.
func (d *Demo) Guide(o GuideOptions) string {
	cli := o.CLI
	if cli == "" {
		cli = "bastion"
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	cmd := func(format string, args ...any) { p(CommandPrefix+format, args...) }
	sshCfg := shellQuote(d.SSHConfigPath)
	sshHost, _, _ := net.SplitHostPort(d.SSHAddr)
	bob := "XDG_CONFIG_HOME=" + shellQuote(d.BobConfigDir) + " "
	// Logins are kept per bastion and the last one is the default; a demo
	// beside another (not on the default address) names its bastion.
	sel := ""
	if d.BastionURL != "http://"+DefaultHTTPAddr {
		sel = " --bastion " + d.BastionURL
	}

	p("")
	p("bastion demo is running. FOR LOCAL USE ONLY: anyone on this machine can sign in at the")
	p("development identity provider as any demo user, and get a shell on %s as the user who", TargetName)
	p("started the demo.")
	p("")
	p("  bastion            ssh %s, login API %s", d.SSHAddr, d.BastionURL)
	p("  web console        %s/ (sign in as alice or bob: sessions, replay, approvals)", d.BastionURL)
	p("  identity provider  %s (development only; users alice and bob)", d.IssuerURL)
	p("                       alice: developer (group dev), may use %s as %q and the database", TargetName, TargetLogin)
	p("                       bob:   approver and auditor (group sre)")
	p("  target %-11s a demo SSH server on %s (host key pinned in the config)", TargetName, d.TargetAddr)
	if d.DBAddr != "" {
		p("  target %-11s PostgreSQL %s on %s, certificate authentication only", DBTarget, d.DBVersion, d.DBAddr)
	} else {
		p("  target %-11s not started: %s", DBTarget, d.DBSkipped)
	}
	p("  config             %s (read it: targets, roles, rules)", d.ConfigPath)
	p("  recordings, keys   %s (kept when the demo stops)", d.DataDir)
	if d.LogPath != "" {
		p("  log                %s", d.LogPath)
	}
	for _, n := range d.Notes {
		p("  note: %s", n)
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		p("  warning: no OpenSSH client (ssh) on PATH; install it to follow the steps below")
	}
	p("")
	p("In another terminal:")
	if o.PathDir != "" {
		p("")
		p("0. Put the bastion command on your PATH (in each new terminal):")
		if q := shellQuote(o.PathDir); q == o.PathDir {
			cmd("export PATH=\"%s:$PATH\"", o.PathDir)
		} else {
			cmd("export PATH=%s:\"$PATH\"", q)
		}
	}
	p("")
	p("1. Log in as alice. A browser opens the identity provider; click Alice:")
	cmd("%s login --bastion %s", cli, d.BastionURL)
	p("   Without a browser, use the device flow: open the URL it prints and click Alice:")
	cmd("%s login --bastion %s --device", cli, d.BastionURL)
	p("")
	p("2. Write an ssh_config for the stock OpenSSH client (certificate, known hosts, ProxyJump):")
	cmd("%s ssh-config%s > %s", cli, sel, sshCfg)
	p("")
	p("3. Run a command on %s through the bastion, recorded; the card numbers come back masked:", TargetName)
	cmd("ssh -F %s -J %s %s@%s 'ls; cat cards.txt'", sshCfg, sshHost, TargetLogin, TargetName)
	p("   or an interactive shell (exit with Ctrl-D):")
	cmd("ssh -F %s %s@%s", sshCfg, TargetLogin, TargetName)
	p("")
	p("4. See a blocked command: rule no-rm-rf stops it before it reaches %s (exit status 126):", TargetName)
	cmd("ssh -F %s %s@%s 'rm -rf important'", sshCfg, TargetLogin, TargetName)
	p("")
	step := 5
	if d.DBAddr != "" {
		_, dbPort, _ := net.SplitHostPort(d.DBAddr)
		p("%d. Query the database through an ssh -L forward (it stays in the background until the", step)
		p("   demo stops); card numbers are masked, and rule no-drop blocks DROP TABLE:")
		cmd("ssh -F %s -f -N -o ExitOnForwardFailure=yes -L %d:%s:%s %s", sshCfg, LocalDBPort, DBTarget, dbPort, sshHost)
		cmd("psql 'host=127.0.0.1 port=%d user=%s dbname=%s' -c 'SELECT * FROM customers'", LocalDBPort, DBUser, DBName)
		cmd("psql 'host=127.0.0.1 port=%d user=%s dbname=%s' -c 'DROP TABLE customers'", LocalDBPort, DBUser, DBName)
		if d.PostgresAddr != "" {
			p("   Programs need no ssh: the login also wrote a certificate for the bastion's PostgreSQL")
			p("   listener (%s); the same rules apply:", d.PostgresAddr)
			cmd("eval \"$(%s db env %s --db %s --user %s)\"; psql -c 'SELECT * FROM customers'", cli, DBTarget, DBName, DBUser)
		}
		p("")
		step++
	}
	p("%d. Ask for approval: rule deploys holds ./deploy.sh until an approver decides. As alice:", step)
	cmd("ssh -F %s %s@%s './deploy.sh v2'", sshCfg, TargetLogin, TargetName)
	p("   It waits and shows a request ID. In a third terminal, log in as bob (click Bob) with a")
	p("   config directory of his own, list the requests and approve:")
	cmd("%s%s login --bastion %s --device", bob, cli, d.BastionURL)
	cmd("%s%s requests", bob, cli)
	cmd("%s%s approve %s", bob, cli, PlaceholderRequest)
	p("")
	step++
	p("%d. Watch a session again: list them, then replay one by its ID (bob, an auditor, sees all):", step)
	cmd("%s sessions%s", cli, sel)
	cmd("%s replay %s%s", cli, PlaceholderSession, sel)
	cmd("%s verify %s%s", cli, PlaceholderSession, sel)
	p("")
	p("Ctrl-C here stops the demo; the recordings and keys stay in %s.", d.Dir)
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,:/@+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
