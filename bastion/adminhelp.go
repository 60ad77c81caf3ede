package bastion

import (
	"flag"
	"fmt"
	"io"
)

// AdminUsage describes an admin command for its --help: the arguments after
// its name, what it does, and its flags. The `bastion` CLI prints the same
// text for its thin clients of these commands, so the overview, the CLI's
// --help and the bastion's own answer never disagree.
type AdminUsage struct {
	Args    string                 // e.g. "ID [--reason R]"
	Summary string                 // one or more sentences
	Flags   func(fs *flag.FlagSet) // defines the flags; nil when there are none
}

// builtinUsage is the usage of the admin commands this package implements.
var builtinUsage = map[string]AdminUsage{
	"whoami": {Args: "[--json]", Summary: "Show the identity in your certificate: user, issuer, groups, roles, serial and expiry.",
		Flags: func(fs *flag.FlagSet) { fs.Bool("json", false, "one JSON object") }},
	"targets": {Args: "[--json] | hostkey NAME [--json]", Summary: "List the targets you may reach, with the logins or database users your roles allow.\n`targets hostkey NAME` prints the host key an SSH target offers (see `bastion targets hostkey --help`).",
		Flags: func(fs *flag.FlagSet) { fs.Bool("json", false, "JSON lines, one target per line") }},
	"targets hostkey": {Args: "NAME [--json]", Summary: "Print the host key the SSH target NAME offers, as the bastion sees it when it dials the target's address: " +
		"the `host_key:` line that pins it in the target's config, and its SHA256 fingerprint. Compare the fingerprint with the target's own " +
		"(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the target) before pinning: this command trusts and pins nothing. " +
		"Auditors may ask about every target, others about the targets they may reach.",
		Flags: func(fs *flag.FlagSet) {
			fs.Bool("json", false, "one JSON object: target, address, host_key, fingerprint, pinned")
		}},
	"requests": {Args: "[--json]", Summary: "List the pending approval requests you may decide, and your own.",
		Flags: func(fs *flag.FlagSet) { fs.Bool("json", false, "JSON lines, one request per line") }},
	"approve": {Args: "ID [--reason R]", Summary: "Approve a held command or statement: single use, bound to that command in that session. Nobody approves their own request.",
		Flags: func(fs *flag.FlagSet) { fs.String("reason", "", "why (recorded in the audit log)") }},
	"deny": {Args: "ID [--reason R]", Summary: "Deny a held command or statement; the requester sees the reason.",
		Flags: func(fs *flag.FlagSet) { fs.String("reason", "", "why (shown to the requester and recorded)") }},
	"help": {Summary: "List the admin commands."},
}

// BuiltinAdminUsage returns the usage of an admin command this package
// implements (whoami, targets, requests, approve, deny, help).
func BuiltinAdminUsage(name string) (AdminUsage, bool) {
	u, ok := builtinUsage[name]
	return u, ok
}

// PrintAdminUsage writes name's usage in the form every bastion command
// uses: a Usage line, the summary, and the flags.
func PrintAdminUsage(w io.Writer, name string, u AdminUsage) {
	fmt.Fprintf(w, "Usage: bastion %s", name)
	if u.Args != "" {
		fmt.Fprintf(w, " %s", u.Args)
	}
	fmt.Fprintf(w, "\n\n%s\n", u.Summary)
	if u.Flags != nil {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		u.Flags(fs)
		fs.SetOutput(w)
		fmt.Fprintf(w, "\nFlags:\n")
		fs.PrintDefaults()
	}
}

// WantsHelp reports whether args ask for a command's usage.
func WantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			return true
		case "--":
			return false
		}
	}
	return false
}
