// Command bastion is the SSH and TCP bastion: the server (serve), a local
// all-in-one setup (demo), and the client commands people and CI jobs use.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// command is one subcommand.
type command struct {
	name    string
	usage   string // arguments, after the name
	summary string
	run     func(args []string) error
}

func commands() []command {
	return []command{
		{"serve", "--config FILE", "run the bastion (SSH and HTTP listeners)", runServe},
		{"demo", "[--dir DIR] [--ssh ADDR] [--http ADDR] [--idp ADDR] [--no-postgres]", "start a complete local setup for a first look", runDemo},
		{"login", "--bastion URL [--device | --id-token-env VAR | --id-token-file F] [--ttl D]", "log in and get a short-lived SSH certificate", runLogin},
		{"db", "env|url|psql TARGET [--db D] [--user U]", "reach a PostgreSQL target through the direct listener with the login's certificate", runDB},
		{"mcp", "[--bastion URL]", "serve MCP on stdio: an LLM agent's database tools, through the SQL API", runMCP},
		{"ssh-config", "[--bastion URL]", "print ssh_config lines for this bastion and its targets", runSSHConfig},
		{"ca", "export --user|--target|--host|--db|--dbclient|--seal | init --KIND --key URI | revoke SERIAL", "print a CA's public part, create a CA key in an HSM or KMS, or revoke a certificate", runCA},
		{"sessions", "[--user U] [--target T] [--since D] [--json]", "list recorded sessions", thin("sessions")},
		{"replay", "ID [--speed X] [--idle-limit D] | --file F.cast", "replay a session in this terminal", runReplay},
		{"export", "ID", "write a session as asciicast v2 on stdout", thin("export")},
		{"verify", "ID | --audit", "check a recording's (or the audit log's) hash chain and seal", thin("verify")},
		{"requests", "[--json]", "list approval requests you may decide", thin("requests")},
		{"approve", "ID", "approve a held command", thin("approve")},
		{"deny", "ID [--reason R]", "deny a held command", thin("deny")},
		{"audit", "[--since D] [--json]", "read the audit log", thin("audit")},
		{"config", "check --config FILE", "validate a config file", runConfig},
		{"store", "migrate --from DATA_DIR --to DSN", "copy a bbolt store into PostgreSQL (for replicas) and verify it", runStore},
		{"whoami", "", "show the identity in your certificate", thin("whoami")},
		{"targets", "[--json]", "list the targets you may reach", thin("targets")},
		{"version", "", "print the version, commit and build date", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "bastion — SSH and TCP bastion with short-lived certificates, command control and recording\n\nUsage:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  bastion %-11s %s\n", c.name, c.usage)
		fmt.Fprintf(w, "  %-19s %s\n", "", c.summary)
	}
	fmt.Fprintf(w, "\nRun `bastion COMMAND --help` for a command's flags.\n")
}

// exitError carries a remote command's exit status through.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:])
		var ee exitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ee):
			return ee.code
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(os.Stderr, "bastion %s: %s\n", c.name, oneLine(err))
		return 1
	}
	fmt.Fprintf(os.Stderr, "bastion: unknown command %q\n\n", args[0])
	usage(os.Stderr)
	return 2
}

var errUsage = errors.New("usage")

// oneLine keeps a client command's failure to one line, as scripts expect;
// multi-line errors (config validation) keep their lines.
func oneLine(err error) string {
	return strings.TrimSpace(err.Error())
}

// flags makes a flag set for a subcommand with a helpful usage line.
func flags(name, args, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("bastion "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bastion %s %s\n\n%s\n\nFlags:\n", name, args, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags that may come before or after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
