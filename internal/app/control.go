package app

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bastionhq/bastion/recorder"
)

// ControlSocket is the unix socket in the data directory over which
// `bastion backup` asks the running bastion for a consistent copy of its
// store (bbolt's file can only be copied consistently by the process that
// holds it). The data directory is 0700 and the socket 0600, so only the
// bastion's own user (and root) reach it.
const ControlSocket = "control.sock"

// startControl listens on the control socket. A socket path too long for
// the system, or one that cannot be created, only loses `bastion backup`
// while the bastion runs, so it is logged, not fatal.
func (a *App) startControl() {
	path := filepath.Join(a.Config.DataDir, ControlSocket)
	if len(path) >= 104 {
		a.Log.Warn("data_dir path too long for the control socket; bastion backup works only while the bastion is stopped", "path", path)
		return
	}
	os.Remove(path) // left by a bastion that did not stop cleanly
	ln, err := net.Listen("unix", path)
	if err != nil {
		a.Log.Warn("control socket unavailable; bastion backup works only while the bastion is stopped", "err", err)
		return
	}
	os.Chmod(path, 0o600)
	a.controlLn = ln
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go a.serveControl(c)
		}
	}()
}

// serveControl answers one request. "backup\n" is answered with
// "ok SIZE\n" and the store's consistent copy, SIZE bytes, or with
// "error: MESSAGE\n"; anything else with an error line.
func (a *App) serveControl(c net.Conn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, 64)).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "backup" {
		fmt.Fprintf(c, "error: unknown request (this socket answers \"backup\")\n")
		return
	}
	c.SetReadDeadline(time.Time{})
	start := time.Now()
	// The copy is audited before it is made: a backup the audit log
	// cannot record is not made, and the copy holds its own record.
	if _, err := a.Store.Audit(recorder.AuditEvent{Type: "store.backup", Outcome: "allowed", Fields: map[string]string{"via": "control socket"}}); err != nil {
		a.Log.Error("backup refused: the audit log cannot record it", "err", err)
		fmt.Fprintf(c, "error: the audit log cannot record the backup, so it is not made (see the bastion's log)\n")
		return
	}
	n, err := a.Store.Backup(c, func(size int64) error {
		_, err := fmt.Fprintf(c, "ok %d\n", size)
		return err
	})
	if err != nil {
		a.Log.Error("backup failed", "err", err, "bytes", n)
		return
	}
	a.Log.Info("backup written", "bytes", n, "duration", time.Since(start).Round(time.Millisecond))
}
