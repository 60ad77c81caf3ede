package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/bastionhq/bastion/internal/login"
)

func runDB(args []string) error {
	const usage = "Usage: bastion db env|url|psql TARGET [--db D] [--user U] [--bastion URL] [-- PSQL-ARGS]\n\n" +
		"Reach a PostgreSQL target through the bastion's direct listener with the client certificate\n" +
		"`bastion login` wrote. Run `bastion db env --help` (or url, psql) for the flags.\n"
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(usage)
		return nil
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "env", "url", "psql":
	default:
		return fmt.Errorf("unknown db command %q (env, url, psql)", sub)
	}
	fs := flags("db "+sub, "TARGET [--db D] [--user U] [--bastion URL]",
		"Reach a PostgreSQL target through the bastion's direct listener with the client certificate\n"+
			"`bastion login` wrote (no ssh tunnel, no helper process):\n"+
			"  env   prints PG* variables: eval \"$(bastion db env pg1 --db shop)\"; psql\n"+
			"  url   prints a connection URI for drivers that take one (--jdbc: a JDBC URL)\n"+
			"  psql  runs psql with them (arguments after -- go to psql)\n"+
			"The certificate lives as long as the login; run `bastion login` again when it expires.")
	db := fs.String("db", "", "database on the target (default: the user)")
	user := fs.String("user", "", "database user (default: your login name)")
	bastionURL := fs.String("bastion", "", "the bastion you logged in to (default: the last one)")
	jdbc := fs.Bool("jdbc", false, "url: a JDBC URL (pgjdbc), with the key in the PKCS#8 DER file it reads")
	var extra []string
	for i, a := range rest {
		if a == "--" {
			rest, extra = rest[:i], rest[i+1:]
			break
		}
	}
	pos, err := parse(fs, rest)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (sub != "psql" && len(extra) > 0) {
		fs.Usage()
		return errUsage
	}
	st, err := clientState(*bastionURL)
	if err != nil {
		return err
	}
	switch sub {
	case "url":
		u, err := login.PGURL(st, pos[0], *db, *user)
		if *jdbc {
			u, err = login.JDBCURL(st, pos[0], *db, *user)
		}
		if err != nil {
			return err
		}
		fmt.Println(u)
		return nil
	}
	env, err := login.PGEnv(st, pos[0], *db, *user)
	if err != nil {
		return err
	}
	if sub == "env" {
		for _, kv := range env {
			fmt.Printf("export %s=%s\n", kv[0], shellQuote([]string{kv[1]}))
		}
		return nil
	}
	cmd := exec.Command("psql", extra...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = os.Environ()
	for _, kv := range env {
		cmd.Env = append(cmd.Env, kv[0]+"="+kv[1])
	}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return exitError{code: ee.ExitCode()}
		}
		return err
	}
	return nil
}
