package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bastionhq/bastion/internal/testenv"
)

// rsyslog is a real rsyslogd receiving RFC 5424 over TCP and writing each
// message's text to a file.
type rsyslog struct {
	t        *testing.T
	dir      string
	port     int
	received string
	cmd      *exec.Cmd
}

func startRsyslog(t *testing.T, dir string, port int) *rsyslog {
	t.Helper()
	bin := testenv.Require(t, "rsyslogd", "/usr/sbin/rsyslogd")
	r := &rsyslog{t: t, dir: dir, port: port, received: filepath.Join(dir, "received.log")}
	conf := filepath.Join(dir, "rsyslog.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`global(workDirectory=%q maxMessageSize="256k")
module(load="imtcp")
input(type="imtcp" port="%d" address="127.0.0.1")
template(name="raw" type="string" string="%%msg%%\n")
action(type="omfile" file=%q template="raw")
`, dir, port, r.received)), 0o600)
	r.cmd = exec.Command(bin, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = os.Stderr, os.Stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	waitPort(t, port)
	return r
}

func (r *rsyslog) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Signal(syscall.SIGTERM)
		r.cmd.Wait()
		r.cmd = nil
	}
}

// seqs returns the sequences of the audit records received, in order.
func (r *rsyslog) seqs() []uint64 {
	b, _ := os.ReadFile(r.received)
	return auditSeqs(string(b))
}

// auditSeqs returns the sequences of the audit records in lines of a
// sink's copy (each possibly behind a syslog header), in arrival order.
func auditSeqs(text string) []uint64 {
	var out []uint64
	for _, line := range strings.Split(text, "\n") {
		i := strings.IndexByte(line, '{')
		if i < 0 {
			continue
		}
		var v struct{ Seq uint64 }
		if json.Unmarshal([]byte(line[i:]), &v) == nil && v.Seq > 0 {
			out = append(out, v.Seq)
		}
	}
	return out
}

func (r *rsyslog) waitFor(head uint64) {
	r.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if s := r.seqs(); len(s) > 0 && s[len(s)-1] >= head {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslog did not receive record %d; got %v", head, r.seqs())
		}
	}
}

// The audit log leaves the box as it is written: a real rsyslog receives
// every record in order, a minute-long outage of it loses nothing, and
// deleting the local log's tail is caught by comparing with what it holds.
func TestAuditShippedToRsyslog(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	rs := startRsyslog(t, dir, port)
	w := newWorldWith(t, fmt.Sprintf("audit: {syslog: {address: \"tcp://127.0.0.1:%d\"}}\n", port))
	aliceCfg := w.loginAlice(t)
	run := func(msg string) {
		if out, err := exec.Command("ssh", "-F", aliceCfg, "root@web1", "echo "+msg).CombinedOutput(); err != nil {
			t.Fatalf("session: %v %s", err, out)
		}
	}
	run("shipped")
	// Let what the session writes after it ends (its end record) reach the
	// sink before the sink goes down: a record in flight when a TCP
	// syslog receiver stops can be lost (the README says so).
	head, _ := w.app.Store.AuditHead()
	for {
		rs.waitFor(head)
		time.Sleep(300 * time.Millisecond)
		if now, _ := w.app.Store.AuditHead(); now == head {
			break
		} else {
			head = now
		}
	}

	// The sink goes down; sessions go on; everything arrives in order
	// when it is back.
	rs.stop()
	start := time.Now()
	for i := 0; time.Since(start) < outage(); i++ {
		run(fmt.Sprintf("during-outage-%d", i))
		time.Sleep(500 * time.Millisecond)
	}
	head, _ = w.app.Store.AuditHead()
	rs = startRsyslog(t, dir, port)
	rs.waitFor(head)
	got := rs.seqs()
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("received record %d as %d (out of order, lost or repeated): %v", i+1, seq, got)
		}
	}
	if r := w.run(nil, "verify", "--audit", "--against", rs.received); r.Code != 0 || !strings.Contains(r.Stdout, "intact") {
		t.Fatalf("verify --against before tampering: %s", r)
	}

	// Someone with the file deletes the newest audit records and their
	// checkpoints: the local chain still verifies, the sink's copy shows
	// the truncation.
	serve, _ := w.serveProcess(t)
	cut := head - 3
	deleteAuditTail(t, w.app.Config.DataDir, cut)
	proc := serve()
	defer proc.Process.Kill()
	if r := w.run(nil, "verify", "--audit"); r.Code != 0 {
		t.Fatalf("local verify after a clean cut: %s", r)
	}
	r := w.run(nil, "verify", "--audit", "--against", rs.received)
	// The local log ends at the cut, or (when the restarted bastion has
	// written records since) goes on differently from there: either way
	// the report names the first record that no longer matches.
	if r.Code == 0 || !(strings.Contains(r.Stdout, fmt.Sprintf("ends at record %d", cut)) || strings.Contains(r.Stdout, fmt.Sprintf("BROKEN at record %d: forked", cut+1))) {
		t.Fatalf("verify --against after the cut: %s", r)
	}
}

// outage is how long the sink stays down: a minute, as an operator would
// see it, unless BASTION_TEST_SHORT_OUTAGE shortens it.
func outage() time.Duration {
	if os.Getenv("BASTION_TEST_SHORT_OUTAGE") != "" {
		return 5 * time.Second
	}
	return time.Minute
}

// deleteAuditTail removes audit records after keep, and their checkpoints,
// from a stopped bastion's store, as an attacker with the file would.
func deleteAuditTail(t *testing.T, dataDir string, keep uint64) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dataDir, "bastion.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"audit", "audit_checkpoints"} {
			b := tx.Bucket([]byte(name))
			var dead [][]byte
			b.ForEach(func(k, _ []byte) error {
				if len(k) == 8 && binary.BigEndian.Uint64(k) > keep {
					dead = append(dead, append([]byte(nil), k...))
				}
				return nil
			})
			for _, k := range dead {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		// A checkpoint at or below keep is left signing a record that
		// still exists: the local chain stays valid.
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
