package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/player"
	"github.com/bastionhq/bastion/recorder"
)

// Offline access: an auditor with a data directory (or a copy of one, a
// backup) and no running bastion reads the store read-only. It is not
// audited, as reading through the bastion is: nothing is written to the
// file, which may be on read-only media, and whoever can read it holds the
// evidence anyway; file permissions are the boundary.

// hasFlag reports whether args carry --name or --name=… (before a "--").
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--"+name || a == "-"+name || strings.HasPrefix(a, "--"+name+"=") || strings.HasPrefix(a, "-"+name+"=") {
			return true
		}
	}
	return false
}

// errFollowOffline: a store read offline has no bastion writing to it.
var errFollowOffline = errors.New("--follow follows a live session through a running bastion; --data-dir reads a store no bastion holds, where nothing is live")

// openOffline opens the store of a data directory read-only, saying
// clearly when a running bastion holds it.
func openOffline(dataDir string) (*recorder.Store, error) {
	path := filepath.Join(dataDir, app.StoreFile)
	st, err := recorder.OpenReadOnly(path, 0)
	switch {
	case errors.Is(err, recorder.ErrLocked):
		return nil, fmt.Errorf("%s is in use by a running bastion: ask it instead (without --data-dir, after `bastion login`), or stop it first", path)
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s does not exist: --data-dir is the bastion's data_dir (it holds %s)", path, app.StoreFile)
	case err != nil:
		return nil, err
	}
	if n, err := st.UnappliedAudit(); err == nil && n > 0 {
		fmt.Fprintf(os.Stderr, "note: %s holds %d audit records not yet in the audit log (the bastion stopped before applying them; its next start does)\n", recorder.JournalPath(path), n)
	}
	return st, nil
}

func runExportCmd(args []string) error {
	if !hasFlag(args, "data-dir") || bastion.WantsHelp(args) {
		if bastion.WantsHelp(args) {
			printExportHelp(os.Stdout)
			return nil
		}
		return thin("export")(args)
	}
	fs := flags("export", exportArgs, "")
	dataDir := fs.String("data-dir", "", "")
	format := fs.String("format", "asciicast", "")
	follow := fs.Bool("follow", false, "")
	fs.String("from", "start", "")
	raw := fs.Bool("raw", false, "")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *dataDir == "" {
		return fs.usageErr()
	}
	if *follow {
		return errFollowOffline
	}
	st, err := openOffline(*dataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	info, err := st.Session(pos[0])
	if err != nil {
		return fmt.Errorf("session %q: %w", pos[0], err)
	}
	switch *format {
	case "asciicast":
		if *raw {
			return st.Export(info.ID, os.Stdout)
		}
		return player.SanitizeExport(func(w io.Writer) error { return st.Export(info.ID, w) }, os.Stdout)
	case "pcap":
		if info.Kind != "tcp" && info.Kind != "postgres" {
			return fmt.Errorf("session %s is a %s session; --format pcap exports tcp and postgres sessions", info.ID, info.Kind)
		}
		return st.ExportPcap(info.ID, os.Stdout)
	}
	return fmt.Errorf("--format %q: want asciicast or pcap", *format)
}

func printExportHelp(w io.Writer) {
	u, _ := app.AdminUsage("export")
	fmt.Fprintf(w, "Usage: bastion export %s\n\n%s\n", exportArgs, u.Summary)
	fmt.Fprintf(w, "Runs on the bastion as the admin command of the same name, with your login certificate;\n"+
		"with --data-dir it reads a data directory (or a backup of one) while no bastion runs (not audited).\n\n"+
		"Flags:\n  -bastion string\n    \tthe bastion to ask, by URL or name (default: the one you logged in to last)\n"+
		"  -data-dir string\n    \tread the store in this data directory, read-only, instead of asking a bastion\n"+
		"  -follow\n    \twhile the session is live, go on writing its events as they are recorded, until it ends\n"+
		"  -format string\n    \tasciicast (plays in asciinema; a tcp session as a readable timeline) or pcap (a tcp or postgres session) (default \"asciicast\")\n"+
		"  -from string\n    \twith --follow: start (the session's own times) or now (what came before at time 0, then live) (default \"start\")\n"+
		"  -raw\n    \tasciicast with the recorded output unchanged, escape sequences included (dangerous to play in a terminal)\n")
}

// offlineSource plays a session from a data directory's store.
func offlineSource(dataDir, id string) (player.Source, func(), error) {
	st, err := openOffline(dataDir)
	if err != nil {
		return nil, nil, err
	}
	if _, err := st.Session(id); err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("session %q: %w", id, err)
	}
	src := player.SourceFunc(func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(st.Export(id, pw)) }()
		return pr, nil
	})
	return src, func() { st.Close() }, nil
}
