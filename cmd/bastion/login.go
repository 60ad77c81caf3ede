package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/internal/duration"
	"github.com/bastionhq/bastion/internal/login"
)

const loginArgs = "--bastion URL [--device | --id-token-env VAR | --id-token-file F] [--ttl D] | --check | --list"

func runLogin(args []string) error {
	fs := flags("login", loginArgs,
		"Log in through your identity provider and get a short-lived SSH certificate.\n"+
			"Without --device or an ID token, a browser login (authorization code + PKCE) is used.\n"+
			"The key and certificate go into the running ssh-agent, or under the config directory (0600) when there is none.\n"+
			"Logins are kept per bastion (staging, production, …) in the config directory; the one logged in to last is\n"+
			"the default for the other commands, and --bastion (a URL, host or host:port) picks another.\n"+
			"--check exits 0 while the login is valid, else says what to do and exits 1; --list shows the logins.")
	bastionURL := fs.String("bastion", "", "the bastion's URL, or the host of one you logged in to (default: the one you last logged in to)")
	device := fs.Bool("device", false, "use the device authorization grant (headless machines)")
	tokenEnv := fs.String("id-token-env", "", "read an OIDC ID token from this environment variable (CI)")
	tokenFile := fs.String("id-token-file", "", "read an OIDC ID token from this file (CI)")
	ttl := fs.String("ttl", "", "ask for a shorter certificate (e.g. 15m)")
	noAgent := fs.Bool("no-agent", false, "write the key to the config directory even when an ssh-agent runs")
	noBrowser := fs.Bool("no-browser", false, "print the login URL without trying to open a browser")
	check := fs.Bool("check", false, "only check the login: exit 0 while it is valid, else say what to do and exit 1")
	list := fs.Bool("list", false, "list the bastions you are logged in to")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fs.usageErr()
	}
	base, err := login.DefaultDir()
	if err != nil {
		return err
	}
	switch {
	case *list:
		return listLogins(base)
	case *check:
		if _, err := clientState(*bastionURL); err != nil {
			return exitWith(1, err)
		}
		return nil
	}
	if *bastionURL == "" {
		if cur := login.Current(base); cur != "" {
			*bastionURL = cur
		} else if st, err := login.Resolve(base, ""); err == nil {
			*bastionURL = st.BastionURL
		} else {
			return fs.usageErr()
		}
	} else if !strings.Contains(*bastionURL, "://") {
		// The host of a bastion logged in to before.
		st, err := login.Resolve(base, *bastionURL)
		if err != nil {
			return fmt.Errorf("--bastion %s: give the bastion's URL (https://…) the first time", *bastionURL)
		}
		*bastionURL = st.BastionURL
	}
	dir, err := login.Dir(base, *bastionURL)
	if err != nil {
		return err
	}
	cfg := login.LoginConfig{BastionURL: *bastionURL, Dir: dir, NoAgent: *noAgent, Out: os.Stderr}
	if *ttl != "" {
		d, err := duration.Parse(*ttl)
		if err != nil {
			return fmt.Errorf("--ttl: %w", err)
		}
		cfg.TTL = d
	}
	n := 0
	for _, set := range []bool{*device, *tokenEnv != "", *tokenFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("choose one of --device, --id-token-env and --id-token-file")
	}
	switch {
	case *device:
		cfg.Method = login.MethodDevice
	case *tokenEnv != "":
		cfg.Method = login.MethodToken
		cfg.IDToken = os.Getenv(*tokenEnv)
		if cfg.IDToken == "" {
			return fmt.Errorf("environment variable %s is empty or not set", *tokenEnv)
		}
	case *tokenFile != "":
		cfg.Method = login.MethodToken
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return err
		}
		cfg.IDToken = string(b)
	default:
		cfg.Method = login.MethodBrowser
		if *noBrowser {
			cfg.OpenBrowser = func(string) error { return errors.New("disabled by --no-browser") }
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	st, err := login.Login(ctx, cfg)
	if err != nil {
		return err
	}
	if err := login.SetCurrent(base, st.BastionURL); err != nil {
		return err
	}
	where := "in your ssh-agent"
	if !st.InAgent {
		where = "in " + st.KeyPath
	}
	fmt.Fprintf(os.Stderr, "Logged in to %s as %s; certificate serial %s valid until %s (key %s).\n",
		st.BastionURL, st.User, st.Serial, st.ValidBefore.Local().Format(time.RFC3339), where)
	fmt.Fprint(os.Stderr, nextSteps(st, dir))
	if st.PostgresAddress != "" {
		fmt.Fprintf(os.Stderr, "Databases: eval \"$(bastion db env TARGET --db DATABASE)\"; psql (certificate in %s).\n", st.DBCertPath)
	}
	return nil
}

// nextSteps says how to use the login with the stock ssh: an ssh_config
// file of this login's own, used with -F (or included from ~/.ssh/config
// for a bastion with a real name; a loopback bastion's stanza would take
// over every `ssh 127.0.0.1`).
func nextSteps(st *login.State, dir string) string {
	file := shellQuote([]string{filepath.Join(dir, "ssh_config")})
	host := hostOf(st.SSHAddress)
	var b strings.Builder
	fmt.Fprintf(&b, "Next: write an ssh_config for this bastion and use it with ssh -F:\n")
	fmt.Fprintf(&b, "  bastion ssh-config%s > %s\n", bastionFlag(st), file)
	fmt.Fprintf(&b, "  ssh -F %s -J %s LOGIN@TARGET\n", file, host)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(&b, "or add `Include %s` at the top of ~/.ssh/config to use it with plain ssh.\n", file)
	}
	return b.String()
}

// bastionFlag is the --bastion flag that names st's bastion, or "" when it
// is the default.
func bastionFlag(st *login.State) string {
	base, err := login.DefaultDir()
	if err == nil && login.Current(base) == st.BastionURL {
		return ""
	}
	return " --bastion " + shellQuote([]string{st.BastionURL})
}

// listLogins prints the bastions logged in to, the default first marked.
func listLogins(base string) error {
	list, err := login.States(base)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return fmt.Errorf("%w: run `bastion login --bastion URL` first", login.ErrNotLoggedIn)
	}
	cur := login.Current(base)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEFAULT\tBASTION\tUSER\tVALID UNTIL")
	for _, st := range list {
		mark, until := "", st.ValidBefore.Local().Format(time.RFC3339)
		if st.BastionURL == cur {
			mark = "*"
		}
		if time.Now().After(st.ValidBefore) {
			until += " (expired)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", mark, st.BastionURL, st.User, until)
	}
	return tw.Flush()
}

// checkCommand is the shell command the ssh_config runs before connecting
// (see login.SSHConfig): this binary's `login --check` for this bastion,
// silent when the binary is gone. Empty when this binary cannot be named
// safely in ssh_config.
func checkCommand(st *login.State) string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if e, err := filepath.EvalSymlinks(exe); err == nil {
		exe = e
	}
	if p, err := exec.LookPath("bastion"); err == nil {
		if p, err = filepath.Abs(p); err == nil && sameFile(p, exe) {
			exe = p // the name on PATH survives an upgrade in place
		}
	}
	q := shellQuote([]string{exe})
	return fmt.Sprintf("test -x %s && %s login --check --bastion %s", q, q, shellQuote([]string{st.BastionURL}))
}

func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}

func runSSHConfig(args []string) error {
	fs := flags("ssh-config", "[--bastion URL]", "Print the ssh_config stanza that makes `ssh -J` through the bastion work with the stock OpenSSH client,\n"+
		"for the bastion and every target you may reach. Write it to a file and use `ssh -F FILE`, or `Include FILE`\n"+
		"from ~/.ssh/config (not for a bastion on 127.0.0.1: its stanza would apply to every `ssh 127.0.0.1`).\n"+
		"Before each connection it runs `bastion login --check`, so an expired login says to log in again.")
	bastionURL := fs.String("bastion", "", "the bastion you logged in to (default: the last one)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	st, err := clientState(*bastionURL)
	if err != nil {
		return err
	}
	// The targets this identity may reach, from the bastion itself.
	var out bytes.Buffer
	var targets []string
	if err := remote(context.Background(), st, []string{"targets", "--json"}, nil, &out, os.Stderr, false); err != nil {
		return fmt.Errorf("list targets: %w", err)
	}
	// JSON lines, one target per line.
	dec := json.NewDecoder(&out)
	for {
		var t policy.TargetAccess
		if err := dec.Decode(&t); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("list targets: %w", err)
		}
		if t.Kind == policy.KindSSH {
			targets = append(targets, t.Name)
		}
	}
	s, err := login.SSHConfig(st, targets, checkCommand(st))
	if err != nil {
		return err
	}
	fmt.Print(s)
	return nil
}
