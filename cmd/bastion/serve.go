package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/config"
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
	if err != nil {
		return err
	}
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
			next, err := config.Load(*cfgPath)
			if err == nil {
				err = a.Reload(next)
			}
			if err != nil {
				// A bad edit must not take the running policy down.
				a.Log.Error("reload refused; the previous policy stays in force", "err", err)
			}
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
		const usage = "Usage: bastion config check --config FILE\n\nValidate a config file: syntax, every field, the files it names, and the compiled policy.\nRun `bastion config check --help` for more.\n"
		if bastion.WantsHelp(args) {
			fmt.Print(usage)
			return nil
		}
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	fs := flags("config check", "--config FILE", "Validate a config file: syntax, every field, and the compiled policy.")
	cfgPath := fs.String("config", "", "config file (YAML)")
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *cfgPath == "" {
		return fs.usageErr()
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(os.Stderr, e)
			}
			return fmt.Errorf("%d problems in %s", len(errs), *cfgPath)
		}
		return err
	}
	if _, err := policy.Compile(cfg.PolicySpec()); err != nil {
		return err
	}
	fmt.Printf("%s: ok (%d targets, %d roles, %d rules)\n", *cfgPath, len(cfg.Targets), len(cfg.Roles), len(cfg.Rules))
	return nil
}
