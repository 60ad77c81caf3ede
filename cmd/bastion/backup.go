package main

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/keyuri"
	"github.com/bastionhq/bastion/internal/safetext"
	"github.com/bastionhq/bastion/recorder"
)

// A backup is a tar file: bastion.db (a consistent copy of the store) and
// ca/* (the CA keys and certificates from the data directory), each 0600.
// Keys kept outside the data directory (a ca: section naming a PKCS#11
// token or a KMS) are not in it: back those up where they live.

const backupArgs = "(--config FILE | --data-dir DIR) --out FILE.tar"

func runBackup(args []string) error {
	fs := flags("backup", backupArgs,
		"Write a backup of the bastion's data directory: a consistent copy of the store (sessions,\n"+
			"recordings, audit log, revocations, pinned host keys) and the CA keys in data_dir/ca.\n"+
			"Run it on the bastion host as the bastion's user (the file holds the CA's private keys:\n"+
			"it is written 0600; keep it like them). While the bastion runs, it makes the copy itself,\n"+
			"through its control socket in the data directory, and audits it; while it is stopped, the\n"+
			"store is read directly. The copy is checked to open as a store before it is written.\n"+
			"Keys the config's ca section keeps in an HSM or KMS are not in it (it says which).\n"+
			"Restore with `bastion restore`.")
	cfgPath := fs.String("config", "", "the bastion's config file (for data_dir and the ca section)")
	dataDir := fs.String("data-dir", "", "the data directory (instead of --config)")
	out := fs.String("out", "", "the backup file to write (- for stdout); it must not exist")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 || *out == "" || (*cfgPath == "") == (*dataDir == "") {
		return fs.usageErr()
	}
	dir, elsewhere := *dataDir, []string(nil)
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		if err := refusePostgresStore(cfg, "backup"); err != nil {
			return err
		}
		dir, elsewhere = cfg.DataDir, keysElsewhere(cfg)
	}
	w, tmpDir := io.Writer(os.Stdout), os.TempDir()
	if *out != "-" {
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		w, tmpDir = f, filepath.Dir(*out)
	}
	fail := func(err error) error {
		if *out != "-" {
			os.Remove(*out)
		}
		return err
	}
	tw := tar.NewWriter(w)
	via, n, err := backupStore(dir, tmpDir, tw)
	if err != nil {
		return fail(err)
	}
	keys, err := backupKeys(dir, tw)
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(os.Stderr, "backup: the store (%d bytes, %s) and %d CA files from %s\n", n, via, keys, dir)
	for _, e := range elsewhere {
		fmt.Fprintf(os.Stderr, "backup: not in the backup: %s; back it up where it lives\n", e)
	}
	return nil
}

// keysElsewhere names what the config's ca section keeps outside data_dir/ca.
func keysElsewhere(cfg *config.Config) []string {
	kc := app.KeyConfig(cfg)
	var out []string
	for _, p := range ca.Purposes {
		if uri := kc.URI(p); uri != "" {
			shown := "a key URI"
			if u, err := keyuri.Parse(uri); err == nil {
				shown = u.String()
			}
			out = append(out, fmt.Sprintf("the %s key, %s", p, shown))
		}
	}
	if kc.DBCert != "" && !strings.HasPrefix(kc.DBCert, filepath.Join(cfg.DataDir, "ca")+string(filepath.Separator)) {
		out = append(out, "the database CA's certificate, "+kc.DBCert)
	}
	return out
}

// backupStore adds the store's consistent copy to tw: made by the running
// bastion through its control socket, else read directly. The copy goes
// through a temporary file in tmpDir and is checked to open as a store.
func backupStore(dir, tmpDir string, tw *tar.Writer) (via string, n int64, err error) {
	tmp, err := os.CreateTemp(tmpDir, ".bastion-backup-*.db")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	st, err := recorder.OpenReadOnly(filepath.Join(dir, app.StoreFile), time.Second)
	switch {
	case err == nil:
		via = "read directly: no bastion was running"
		var behind int
		if behind, err = st.UnappliedAudit(); err == nil && behind > 0 {
			err = fmt.Errorf("the store's audit journal (%s) holds %d audit records its audit log does not have yet: the bastion stopped before applying them; start it once (it applies them first), then back up", recorder.JournalPath(filepath.Join(dir, app.StoreFile)), behind)
		}
		if err == nil {
			_, err = st.Backup(tmp, nil)
		}
		st.Close()
	case errors.Is(err, recorder.ErrLocked):
		via = "copied by the running bastion"
		err = backupFromBastion(dir, tmp)
	case errors.Is(err, os.ErrNotExist):
		err = fmt.Errorf("%s has no store (%s): is it the bastion's data_dir?", dir, app.StoreFile)
	}
	if err != nil {
		return "", 0, err
	}
	cp, err := recorder.OpenReadOnly(tmp.Name(), time.Second)
	if err != nil {
		return "", 0, fmt.Errorf("the copy of the store does not open, so no backup was written: %w", err)
	}
	cp.Close()
	if n, err = tmp.Seek(0, io.SeekEnd); err != nil {
		return "", 0, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return "", 0, err
	}
	hdr := &tar.Header{Name: app.StoreFile, Mode: 0o600, Size: n, ModTime: time.Now().Truncate(time.Second), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return "", 0, err
	}
	if _, err := io.Copy(tw, tmp); err != nil {
		return "", 0, err
	}
	return via, n, nil
}

// backupFromBastion asks the running bastion for its store's copy over the
// control socket: it answers "ok SIZE" and SIZE bytes, or "error: …".
func backupFromBastion(dir string, w io.Writer) error {
	c, err := net.Dial("unix", filepath.Join(dir, app.ControlSocket))
	if err != nil {
		return fmt.Errorf("a bastion holds the store, but its control socket does not answer (%v): run backup on the bastion host, as the bastion's user", err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "backup\n"); err != nil {
		return err
	}
	return readBackupAnswer(c, w)
}

// readBackupAnswer reads the bastion's answer to "backup" from r and copies
// the store's copy to w; the copy must be as long as announced.
func readBackupAnswer(r io.Reader, w io.Writer) error {
	br := bufio.NewReader(io.LimitReader(r, 1<<10))
	line, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("the bastion did not answer on its control socket (%v): see its log", err)
	}
	// What the line reader read past the line is the copy's start.
	body := io.MultiReader(br, r)
	line = strings.TrimSpace(line)
	if msg, ok := strings.CutPrefix(line, "error: "); ok {
		return fmt.Errorf("the bastion refused: %s", safetext.Printable(msg))
	}
	num, ok := strings.CutPrefix(line, "ok ")
	size, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || size <= 0 {
		return fmt.Errorf("unexpected answer on the control socket: %q", safetext.Printable(line))
	}
	got, err := io.CopyN(w, body, size)
	if err == nil && got == size {
		// Nothing may follow the copy.
		if n, _ := io.Copy(io.Discard, io.LimitReader(body, 1)); n > 0 {
			return fmt.Errorf("the bastion sent more than the %d bytes it announced", size)
		}
	}
	if err != nil {
		return fmt.Errorf("the bastion's copy ended after %d of %d bytes (%v): see its log", got, size, err)
	}
	return nil
}

// backupKeys adds the regular files of data_dir/ca.
func backupKeys(dir string, tw *tar.Writer) (int, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "ca"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "ca", e.Name()))
		if err != nil {
			return n, err
		}
		hdr := &tar.Header{Name: "ca/" + e.Name(), Mode: 0o600, Size: int64(len(b)), ModTime: time.Now().Truncate(time.Second), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return n, err
		}
		if _, err := tw.Write(b); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

const restoreArgs = "(--config FILE | --data-dir DIR) --from FILE.tar [--force]"

func runRestore(args []string) error {
	fs := flags("restore", restoreArgs,
		"Restore a backup written by `bastion backup` into the data directory, with the bastion stopped.\n"+
			"It checks the backup first (a store that opens, only bastion.db and ca/ files), refuses while a\n"+
			"bastion holds the store, and refuses a data directory that already has a store or keys unless\n"+
			"--force, which moves them aside to data_dir/before-restore-TIME/ (nothing is deleted).")
	cfgPath := fs.String("config", "", "the bastion's config file (for data_dir)")
	dataDir := fs.String("data-dir", "", "the data directory (instead of --config)")
	from := fs.String("from", "", "the backup file")
	force := fs.Bool("force", false, "move an existing store and keys aside instead of refusing")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 || *from == "" || (*cfgPath == "") == (*dataDir == "") {
		return fs.usageErr()
	}
	dir, err := dataDirOf(*cfgPath, *dataDir)
	if err != nil {
		return err
	}
	// Unpack into a staging directory beside the target, check, then move.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	stage, err := os.MkdirTemp(dir, ".restore-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	if err := unpackBackup(*from, stage); err != nil {
		return fmt.Errorf("restore: %s: %w", *from, err)
	}
	st, err := recorder.OpenReadOnly(filepath.Join(stage, app.StoreFile), time.Second)
	if err != nil {
		return fmt.Errorf("restore: the backup's store does not open: %w", err)
	}
	st.Close()
	if live, err := recorder.OpenReadOnly(filepath.Join(dir, app.StoreFile), time.Second); errors.Is(err, recorder.ErrLocked) {
		return errors.New("restore: a bastion is running on this data directory: stop it first")
	} else if err == nil {
		live.Close()
	}
	var existing []string
	// The store's audit journal and chunk log go with the store: applied
	// to the restored one the journal would add records from after the
	// backup (the backup's store holds its chunks itself).
	for _, name := range []string{app.StoreFile, filepath.Base(recorder.JournalPath(app.StoreFile)), filepath.Base(recorder.ChunkDir(app.StoreFile)), "ca"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			existing = append(existing, name)
		}
	}
	if len(existing) > 0 {
		if !*force {
			return fmt.Errorf("restore: %s already has %s: use --force to move them aside", dir, strings.Join(existing, " and "))
		}
		aside := filepath.Join(dir, "before-restore-"+time.Now().UTC().Format("20060102T150405Z"))
		if err := os.Mkdir(aside, 0o700); err != nil {
			return err
		}
		for _, name := range existing {
			if err := os.Rename(filepath.Join(dir, name), filepath.Join(aside, name)); err != nil {
				return err
			}
		}
		fmt.Fprintf(os.Stderr, "restore: moved the existing %s to %s\n", strings.Join(existing, " and "), aside)
	}
	for _, name := range []string{app.StoreFile, "ca"} {
		if _, err := os.Lstat(filepath.Join(stage, name)); err != nil {
			continue
		}
		if err := os.Rename(filepath.Join(stage, name), filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "restore: %s restored into %s; start the bastion\n", *from, dir)
	return nil
}

// maxBackupEntry bounds one file in a backup (the store may be large).
const maxBackupEntry = 1 << 40

// unpackBackup extracts a backup's bastion.db and ca/* into dir, 0600, and
// refuses anything else: other names, links, paths outside dir.
func unpackBackup(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	sawStore := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("not a backup (a tar file from bastion backup): %w", err)
		}
		name, err := backupEntryName(hdr)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, io.LimitReader(tr, maxBackupEntry))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		sawStore = sawStore || name == app.StoreFile
	}
	if !sawStore {
		return fmt.Errorf("no %s in the backup", app.StoreFile)
	}
	return nil
}

// backupEntryName checks a backup entry: a regular file named bastion.db
// or ca/NAME, NAME a plain file name.
func backupEntryName(hdr *tar.Header) (string, error) {
	if hdr.Typeflag != tar.TypeReg {
		return "", fmt.Errorf("entry %q is not a regular file", hdr.Name)
	}
	if hdr.Name == app.StoreFile {
		return hdr.Name, nil
	}
	if key, ok := strings.CutPrefix(hdr.Name, "ca/"); ok && key != "" && key != "." && key != ".." && !strings.ContainsAny(key, "/\\\x00") {
		return hdr.Name, nil
	}
	return "", fmt.Errorf("unexpected entry %q (a backup holds bastion.db and ca/ files only)", hdr.Name)
}

// dataDirOf is --data-dir, or the data_dir of --config.
func dataDirOf(cfgPath, dataDir string) (string, error) {
	if dataDir != "" {
		return dataDir, nil
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return "", err
	}
	if err := refusePostgresStore(cfg, "restore"); err != nil {
		return "", err
	}
	return cfg.DataDir, nil
}

// refusePostgresStore refuses backup and restore for a config whose store
// is in PostgreSQL: they read and write data_dir/bastion.db, which such a
// bastion never opens (after `store migrate` it is the stale copy from
// before the migration), so a "backup" of it would hold none of the
// sessions or audit records since, and a restore would change nothing the
// replicas read.
func refusePostgresStore(cfg *config.Config, what string) error {
	if cfg.Store.Postgres == nil {
		return nil
	}
	return fmt.Errorf("this bastion's store is in PostgreSQL (store.postgres), not in %s: %s the database with its own tools (pg_dump, or base backups with WAL archiving), and the CA keys in %s separately",
		filepath.Join(cfg.DataDir, app.StoreFile), what, filepath.Join(cfg.DataDir, "ca"))
}
