package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/login"
)

func runLogin(args []string) error {
	fs := flags("login", "--bastion URL [--device | --id-token-env VAR | --id-token-file F] [--ttl D]",
		"Log in through your identity provider and get a short-lived SSH certificate.\n"+
			"Without --device or an ID token, a browser login (authorization code + PKCE) is used.\n"+
			"The key and certificate go into the running ssh-agent, or under the config directory (0600) when there is none.")
	bastionURL := fs.String("bastion", "", "the bastion's HTTPS URL (default: the one you last logged in to)")
	device := fs.Bool("device", false, "use the device authorization grant (headless machines)")
	tokenEnv := fs.String("id-token-env", "", "read an OIDC ID token from this environment variable (CI)")
	tokenFile := fs.String("id-token-file", "", "read an OIDC ID token from this file (CI)")
	ttl := fs.String("ttl", "", "ask for a shorter certificate (e.g. 15m)")
	noAgent := fs.Bool("no-agent", false, "write the key to the config directory even when an ssh-agent runs")
	noBrowser := fs.Bool("no-browser", false, "print the login URL without trying to open a browser")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fs.usageErr()
	}
	dir, err := login.DefaultDir()
	if err != nil {
		return err
	}
	if *bastionURL == "" {
		if st, err := login.LoadState(dir); err == nil {
			*bastionURL = st.BastionURL
		} else {
			return fs.usageErr()
		}
	}
	cfg := login.LoginConfig{BastionURL: *bastionURL, Dir: dir, NoAgent: *noAgent, Out: os.Stderr}
	if *ttl != "" {
		d, err := config.ParseDuration(*ttl)
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
	where := "in your ssh-agent"
	if !st.InAgent {
		where = "in " + st.KeyPath
	}
	fmt.Fprintf(os.Stderr, "Logged in as %s; certificate serial %s valid until %s (key %s).\n", st.User, st.Serial, st.ValidBefore.Local().Format(time.RFC3339), where)
	fmt.Fprintf(os.Stderr, "Next: `bastion ssh-config >> ~/.ssh/config`, then `ssh -J %s LOGIN@TARGET`.\n", hostOf(st.SSHAddress))
	if st.PostgresAddress != "" {
		fmt.Fprintf(os.Stderr, "Databases: eval \"$(bastion db env TARGET --db DATABASE)\"; psql (certificate in %s).\n", st.DBCertPath)
	}
	return nil
}

func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}

func runSSHConfig(args []string) error {
	fs := flags("ssh-config", "[--bastion URL]", "Print the ssh_config stanza that makes `ssh -J` through the bastion work with the stock OpenSSH client,\nfor the bastion and every target you may reach. Append it to ~/.ssh/config.")
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
	s, err := login.SSHConfig(st, targets)
	if err != nil {
		return err
	}
	fmt.Print(s)
	return nil
}
