package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/config"
)

// runStore runs `bastion store migrate`.
func runStore(args []string) error {
	const usage = "Usage: bastion store migrate --from DATA_DIR --to DSN | --to-env VAR [--config FILE]\n\n" +
		"Copy a bbolt store into an empty PostgreSQL database, for replicas, and verify the copy.\n" +
		"Run `bastion store migrate --help` for the flags.\n"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Print(usage)
		return nil
	}
	if len(args) == 0 || args[0] != "migrate" {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	fs := flags("store migrate", "--from DATA_DIR --to DSN | --to-env VAR [--config FILE]",
		"Copy a bbolt store (sessions, recordings, audit chain, revocations, host-key pins)\n"+
			"into an empty PostgreSQL database and verify the copy with the seal keys.\n"+
			"Stop the bastion first. --to-env keeps a password off the command line;\n"+
			"--config reads ca.seal (a key URI, ca.seal.previous) from a config file.")
	from := fs.String("from", "", "the data directory holding bastion.db")
	to := fs.String("to", "", "the PostgreSQL connection string (libpq keywords or postgres:// URL)")
	toEnv := fs.String("to-env", "", "environment variable holding the connection string")
	cfgPath := fs.String("config", "", "config file whose ca section holds the seal key")
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	dsn := *to
	if *toEnv != "" {
		dsn = os.Getenv(*toEnv)
	}
	if *from == "" || (*to == "") == (*toEnv == "") || strings.TrimSpace(dsn) == "" {
		fs.Usage()
		return errUsage
	}
	var cfg *config.Config
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	rep, err := app.MigrateStore(*from, dsn, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("copied %d sessions (%d chunks), %d audit records, %d revocations, %d host-key pins\n",
		rep.Sessions, rep.Chunks, rep.AuditRecords, rep.Revocations, rep.HostKeys)
	if len(rep.Problems) > 0 {
		for _, p := range rep.Problems {
			fmt.Println("does not verify:", p)
		}
		return errors.New("store migrate: the copy does not verify (see above)")
	}
	fmt.Println("the copy verifies: every session and the audit chain")
	return nil
}
