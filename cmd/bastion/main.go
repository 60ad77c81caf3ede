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

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/safetext"
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
		{"ca", caArgs, "print a CA's public part, create a CA key in an HSM or KMS, or revoke a certificate or a user", runCA},
		{"sessions", adminArgs("sessions"), "list recorded sessions", thin("sessions")},
		{"replay", replayArgs, "replay a session in this terminal", runReplay},
		{"export", exportArgs, "write a session as asciicast v2 (or pcap) on stdout", runExport},
		{"verify", adminArgs("verify"), "check a recording's (or the audit log's) hash chain and seal", thin("verify")},
		{"requests", adminArgs("requests"), "list approval requests you may decide", thin("requests")},
		{"approve", adminArgs("approve"), "approve a held command", thin("approve")},
		{"deny", adminArgs("deny"), "deny a held command", thin("deny")},
		{"audit", adminArgs("audit"), "read the audit log", thin("audit")},
		{"config", "check --config FILE", "validate a config file", runConfig},
		{"store", "migrate --from DATA_DIR --to DSN", "copy a bbolt store into PostgreSQL (for replicas) and verify it", runStore},
		{"backup", backupArgs, "back up the store and the CA keys (on the bastion host)", runBackup},
		{"restore", restoreArgs, "restore a backup into the data directory (bastion stopped)", runRestore},
		{"whoami", adminArgs("whoami"), "show the identity in your certificate", thin("whoami")},
		{"targets", targetsArgs, "list the targets you may reach", runTargets},
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

// Synopses of the commands that add local flags to an admin command's.
var (
	replayArgs  = "ID [--speed X] [--idle-limit D] [--raw] [--follow [--from start|now]] [--data-dir DIR] | --file F.cast"
	caArgs      = "export --user|--target|--host|--db|--dbclient|--seal [--config FILE | --data-dir DIR] | init --KIND --key URI | revoke SERIAL|--user NAME [--reason R]"
	exportArgs  = "ID [--format asciicast|pcap] [--follow [--from start|now]] [--raw] [--data-dir DIR]"
	targetsArgs = adminArgs("targets")
	runExport   = runExportCmd
	runTargets  = runTargetsCmd
)

// runTargetsCmd is the thin client of `targets` and `targets hostkey NAME`.
func runTargetsCmd(args []string) error {
	if len(args) > 0 && args[0] == "hostkey" && bastion.WantsHelp(args[1:]) {
		thinHelp(os.Stdout, "targets hostkey", "targets hostkey")
		return nil
	}
	return thin("targets")(args)
}

// adminArgs is the synopsis of a thin client of an admin command: the
// bastion's own, so the overview and `bastion NAME --help` agree with it.
func adminArgs(name string) string {
	u, _ := app.AdminUsage(name)
	return u.Args
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
		fmt.Fprintf(os.Stderr, "bastion %s: %s\n", c.name, errorText(c.name, err))
		return 1
	}
	fmt.Fprintf(os.Stderr, "bastion: unknown command %q\n\n", args[0])
	usage(os.Stderr)
	return 2
}

// errUsage means the command line was wrong; the usage has been printed.
var errUsage = errors.New("usage")

// errorText is a failure as the one line run prints after "bastion NAME: ",
// without the command's name again where the error starts with it (package
// errors name where they come from: "login: ask the bastion: …"), and
// without a "bastion: " the bastion put in front of its own messages.
// Multi-line errors (config validation) keep their lines.
//
// Control characters but line feeds and tabs are escaped (safetext.Visible):
// the error can carry what a bastion or an identity provider answered, and
// a phishing URL's could otherwise write to the terminal (OSC 52: the
// clipboard).
func errorText(name string, err error) string {
	msg := safetext.Visible(strings.TrimSpace(err.Error()))
	if strings.Contains(msg, "\n") {
		return msg
	}
	for {
		trimmed := strings.TrimPrefix(strings.TrimPrefix(msg, "bastion: "), name+": ")
		if trimmed == msg {
			return msg
		}
		msg = trimmed
	}
}

// cmdFlags is a subcommand's flag set with its usage: --help prints the
// usage to stdout and exits 0; a bad flag prints the error and the usage
// line to stderr and exits 2.
type cmdFlags struct {
	*flag.FlagSet
	name, args, summary string
}

// flags makes a flag set for a subcommand.
func flags(name, args, summary string) *cmdFlags {
	fs := &cmdFlags{FlagSet: flag.NewFlagSet("bastion "+name, flag.ContinueOnError), name: name, args: args, summary: summary}
	fs.FlagSet.Usage = func() {} // parse prints what is needed
	return fs
}

// printUsage writes the full usage: the Usage line, the summary, the flags.
func (fs *cmdFlags) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: bastion %s", fs.name)
	if fs.args != "" {
		fmt.Fprintf(w, " %s", fs.args)
	}
	fmt.Fprintf(w, "\n\n%s\n", fs.summary)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(os.Stderr)
	}
}

// usageErr says how the command is used, on stderr, and returns errUsage.
func (fs *cmdFlags) usageErr() error {
	fmt.Fprintf(os.Stderr, "Usage: bastion %s %s\nRun `bastion %s --help` for more.\n", fs.name, fs.args, fs.name)
	return errUsage
}

// parse parses flags that may come before or after positional arguments.
func parse(fs *cmdFlags, args []string) ([]string, error) {
	var pos []string
	fs.SetOutput(os.Stderr)
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.printUsage(os.Stdout)
				return nil, err
			}
			return nil, fs.usageErr()
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// thinHelp prints the usage of a thin client of an admin command: the
// bastion's own usage, plus the flag that picks the bastion.
func thinHelp(w io.Writer, cli, name string) {
	u, _ := app.AdminUsage(name)
	flags := u.Flags
	u.Flags = func(fs *flag.FlagSet) {
		if flags != nil {
			flags(fs)
		}
		fs.String("bastion", "", "the bastion to ask, by URL or name (default: the one you logged in to last)")
	}
	u.Summary += "\nRuns on the bastion as the admin command of the same name, with your login certificate."
	bastion.PrintAdminUsage(w, cli, u)
}
