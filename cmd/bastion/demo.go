package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/bastionhq/bastion/internal/demo"
)

// defaultDemoDir is where `bastion demo` keeps its config, keys and
// recordings: a directory next to where it was started (the clone, after
// `make demo`), visible, kept across runs so recordings survive a restart,
// and removed with one rm -rf. A temporary directory would hide the config
// people are meant to read and lose the recordings at the next reboot.
const defaultDemoDir = "bastion-demo"

func runDemo(args []string) error {
	fs := flags("demo", "[--dir DIR] [--ssh ADDR] [--http ADDR] [--idp ADDR] [--no-postgres]",
		"Start a complete local setup for a first look, on loopback: a development identity provider\n"+
			"(for local use only), a demo SSH target, a demo PostgreSQL when one is installed, and the\n"+
			"bastion between them with a config of block, approval and masking rules. It prints what to\n"+
			"type next. Ctrl-C stops it; the config, keys and recordings stay in DIR.")
	dir := fs.String("dir", defaultDemoDir, "directory for the config, CA keys, recordings and logs (kept)")
	sshAddr := fs.String("ssh", demo.DefaultSSHAddr, "bastion SSH address (loopback; a busy port falls back to a free one)")
	httpAddr := fs.String("http", demo.DefaultHTTPAddr, "bastion HTTP address (loopback; a busy port falls back to a free one)")
	idpAddr := fs.String("idp", demo.DefaultIssuerAddr, "identity provider address (loopback; a busy port falls back to a free one)")
	noPG := fs.Bool("no-postgres", false, "do not start the demo database even when PostgreSQL is installed")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fs.usageErr()
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "Starting the bastion demo in %s …\n", abs)
	d, err := demo.Start(ctx, demo.Config{
		Dir: abs, SSHAddr: *sshAddr, HTTPAddr: *httpAddr, IssuerAddr: *idpAddr,
		NoPostgres: *noPG, Out: os.Stderr,
	})
	if err != nil {
		return err
	}
	// zitadel logs through slog's default logger; keep it in the demo's log
	// rather than between the instructions.
	slog.SetDefault(d.Logger)
	fmt.Print(d.Guide(guideOptions()))

	<-ctx.Done()
	stop()
	fmt.Fprintln(os.Stderr, "\nStopping the demo (Ctrl-C again to stop at once) …")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	go func() {
		select {
		case <-again:
			cancel()
		case <-sctx.Done():
		}
	}()
	if err := d.Close(sctx); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Stopped. The config, keys and recordings are kept in %s (rm -rf it to start afresh).\n", abs)
	return nil
}

// guideOptions says how the guide should name this binary: plain `bastion`
// when that finds this very binary on PATH, else with a PATH export for its
// directory (after `make demo` it is bin/bastion), else by its full path.
func guideOptions() demo.GuideOptions {
	exe, err := os.Executable()
	if err != nil {
		return demo.GuideOptions{}
	}
	if e, err := filepath.EvalSymlinks(exe); err == nil {
		exe = e
	}
	if p, err := exec.LookPath("bastion"); err == nil {
		if p, err = filepath.Abs(p); err == nil && sameFile(p, exe) {
			return demo.GuideOptions{}
		}
	}
	if filepath.Base(exe) == "bastion" {
		return demo.GuideOptions{PathDir: filepath.Dir(exe)}
	}
	return demo.GuideOptions{CLI: exe}
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}
