package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/gcfloor"
)

func runServe(args []string) error {
	fs := flags("serve", "--config FILE", "Run the bastion: the SSH listener, and the HTTP listener with the login API, /healthz and /metrics.\nSIGHUP reloads targets, roles and rules; SIGTERM or SIGINT shuts down gracefully.")
	cfgPath := fs.String("config", "", "config file (YAML)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return fs.usageErr()
	}
	cfg, err := config.Load(*cfgPath)
	if err == nil {
		var warnings []string
		warnings, err = cfg.CheckFiles()
		for _, w := range warnings {
			fmt.Fprintln(os.Stderr, "warning: "+w)
		}
		if err == nil {
			_, err = app.CompilePolicy(cfg)
		}
	}
	if err != nil {
		// A config that cannot work will not work on the next try either:
		// exit with EX_CONFIG, which the systemd unit does not restart.
		fmt.Fprintf(os.Stderr, "bastion serve: %v\n", err)
		return exitError{exConfig}
	}
	// Fewer collections while the live heap is small (see gcfloor); the
	// operator's GOGC, when set, wins.
	defer gcfloor.Start(gcfloor.Default).Stop()
	a, err := app.New(cfg, app.Options{})
	if err != nil {
		return err
	}
	if err := a.Start(); err != nil {
		a.Shutdown(context.Background())
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			// A bad edit must not take the running policy down: it is
			// refused, logged and audited.
			_ = a.ReloadFile(*cfgPath)
			continue
		}
		a.Log.Info("shutting down", "signal", sig.String(), "grace", cfg.Sessions.ShutdownGrace.D)
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Sessions.ShutdownGrace.D)
		err := a.Shutdown(ctx)
		cancel()
		return err
	}
	return nil
}

func runConfig(args []string) error {
	if len(args) == 0 || args[0] != "check" {
		const usage = "Usage: bastion config check --config FILE [--offline]\n\nValidate a config file: syntax, every field, the files it names, and the compiled policy.\nRun `bastion config check --help` for more.\n"
		if bastion.WantsHelp(args) {
			fmt.Print(usage)
			return nil
		}
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	fs := flags("config check", "--config FILE [--offline]",
		"Validate a config file: syntax, every field, the compiled policy, and the files it names\n"+
			"(existence, permissions for this user, that certificates parse), as `bastion serve` would\n"+
			"use them; run it as the user the bastion runs as. It also fetches the identity providers'\n"+
			"discovery documents and warns when one cannot be fetched (--offline skips that).\n"+
			"Exit status 0: the config works; 1: it does not (every problem is listed).")
	cfgPath := fs.String("config", "", "config file (YAML)")
	offline := fs.Bool("offline", false, "do not fetch the identity providers' discovery documents")
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *cfgPath == "" {
		return fs.usageErr()
	}
	var problems config.Errors
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		if !errors.As(err, &problems) {
			return err
		}
	} else {
		if _, err := app.CompilePolicy(cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			problems = append(problems, nil)
		}
		warnings, err := cfg.CheckFiles()
		errors.As(err, &problems)
		if !*offline {
			warnings = append(warnings, checkIssuers(cfg)...)
		}
		for _, w := range warnings {
			fmt.Fprintln(os.Stderr, "warning: "+w)
		}
	}
	if len(problems) > 0 {
		for _, e := range problems {
			if e != nil {
				fmt.Fprintln(os.Stderr, e)
			}
		}
		return fmt.Errorf("%d problem(s) in %s", len(problems), *cfgPath)
	}
	fmt.Printf("%s: ok (%d targets, %d roles, %d rules)\n", *cfgPath, len(cfg.Targets), len(cfg.Roles), len(cfg.Rules))
	return nil
}

// exConfig is the exit status of serve for a config that cannot work
// (sysexits.h EX_CONFIG); the systemd unit does not restart after it.
const exConfig = 78

// checkIssuers fetches the OpenID discovery document of the login issuer
// and of every workload issuer, and returns a warning for each that cannot
// be fetched or does not describe that issuer: the bastion starts without
// them, but logins fail until they can be fetched.
func checkIssuers(cfg *config.Config) []string {
	issuers := []string{cfg.OIDC.Issuer}
	for _, w := range cfg.OIDC.Workload {
		if !slices.Contains(issuers, w.Issuer) {
			issuers = append(issuers, w.Issuer)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	var warnings []string
	for i, iss := range issuers {
		field := "oidc.issuer"
		if i > 0 {
			field = "oidc.workload issuer " + iss
		}
		if err := checkDiscovery(client, iss, i == 0); err != nil {
			warnings = append(warnings, fmt.Sprintf("config: %s: %v", field, err))
		}
	}
	return warnings
}

// checkDiscovery fetches issuer's discovery document and checks that it
// names the same issuer (a trailing slash too many is a common mistake,
// and go-oidc refuses it) and, for the login issuer, the endpoints `bastion
// login` uses.
func checkDiscovery(client *http.Client, issuer string, login bool) error {
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	resp, err := client.Get(u)
	if err != nil {
		return fmt.Errorf("cannot fetch the discovery document: %v; logins fail until it can be fetched", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d; logins fail until it can be fetched (is the issuer URL right?)", u, resp.StatusCode)
	}
	var doc struct {
		Issuer   string `json:"issuer"`
		AuthURL  string `json:"authorization_endpoint"`
		TokenURL string `json:"token_endpoint"`
		Device   string `json:"device_authorization_endpoint"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return fmt.Errorf("%s is not a discovery document: %v", u, err)
	}
	switch {
	case doc.Issuer != issuer:
		return fmt.Errorf("the discovery document names the issuer %q, not %q: write it exactly as the identity provider does (ID tokens are checked against it)", doc.Issuer, issuer)
	case login && (doc.AuthURL == "" || doc.TokenURL == ""):
		return errors.New("the discovery document has no authorization or token endpoint: `bastion login` cannot log in there")
	case login && doc.Device == "":
		return errors.New("the identity provider offers no device authorization grant: `bastion login --device` will not work (the browser login does)")
	}
	return nil
}
