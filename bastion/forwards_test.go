package bastion_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/testenv"
)

// A target trusted through a host CA must present a host certificate: a
// user certificate from the same CA (one CA for users and hosts is a
// common setup, and a user can often choose its principals) whose
// principals name the target's address does not vouch for a host, and
// OpenSSH's client refuses it ("not a host certificate"). Accepting it lets
// whoever holds such a certificate, and can answer on the target's address,
// receive the sessions the bastion relays to that target.
func TestTargetUserCertificateIsNotAHostCertificate(t *testing.T) {
	orgKeys, err := ca.LoadOrCreateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	orgCA := orgKeys.HostCA // the organisation's CA, trusted as the targets' host CA
	e := newEnv(t, envOptions{})
	impostor := testenv.StartSSHD(t, testenv.SSHDOptions{
		TrustedUserCAKeys: e.app.Keys.TargetCALine(),
		HostCertificate: func(pub ssh.PublicKey) (*ssh.Certificate, error) {
			c := &ssh.Certificate{Key: pub, CertType: ssh.UserCert, KeyId: "mallory",
				ValidPrincipals: []string{"127.0.0.1", "web2", "mallory"},
				ValidAfter:      uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix()),
				Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}}}
			return c, c.SignCert(rand.Reader, orgCA)
		},
	})
	caLine := strings.TrimPrefix(orgKeys.HostCALine("*"), "@cert-authority * ")
	cfg := *e.app.Config
	cfg.Targets = append(cfg.Targets[:len(cfg.Targets):len(cfg.Targets)],
		targetWith("web2", impostor.Addr, func(tg *targetT) { tg.HostCA = caLine }))
	if err := e.app.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	r := e.ssh("", "root@web2", "echo reached-the-impostor")
	if r.Code == 0 || strings.Contains(r.Stdout, "reached-the-impostor") {
		t.Fatalf("a user certificate was accepted as the target's host certificate: %s", r)
	}
	mustContain(t, "refusal", r.Stderr, "not a host certificate")
}

// Past recording.max_bytes a tcp forward goes on, unstored, as documented
// (strict mode stops a forward whose recording fails, not one whose budget
// is spent), and its capture says so: the bytes it lacks show as missing
// before each side's FIN, at the sequence numbers the real connection
// had, rather than the capture ending mid-stream as if nothing followed.
func TestForwardPastMaxBytes(t *testing.T) {
	testenv.Require(t, "tshark")
	e := newEnv(t, envOptions{extraYAML: "recording: {mode: strict, max_bytes: 1KiB}\n"})
	c := e.dialBastion(t, e.alice)
	defer c.Close()
	conn, err := c.Dial("tcp", "echo:"+portOf(e.echo))
	if err != nil {
		t.Fatal(err)
	}
	sent := bytes.Repeat([]byte("0123456789"), 400)
	if _, err := conn.Write(sent); err != nil {
		t.Fatal(err)
	}
	conn.(interface{ CloseWrite() error }).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(conn)
	conn.Close()
	if want := append(bytes.Clone(sent), "<tail>"...); !bytes.Equal(got, want) {
		t.Fatalf("the forward past max_bytes returned %d bytes (%v), want %d", len(got), err, len(want))
	}
	id := e.tcpSession(t, "echo")
	exp := e.ssh("", "bastion", "export", id, "--format", "pcap")
	if exp.Code != 0 {
		t.Fatalf("export: %s", exp)
	}
	pcap := filepath.Join(t.TempDir(), "s.pcap")
	os.WriteFile(pcap, []byte(exp.Stdout), 0o600)
	fins := strings.Fields(tshark(t, pcap, "-Y", "tcp.flags.fin == 1 && tcp.analysis.lost_segment", "-T", "fields", "-e", "tcp.seq"))
	// 4000 bytes each way, and "<tail>": the FINs' relative sequence
	// numbers count them (and the SYN).
	if !slices.Contains(fins, "4001") || !slices.Contains(fins, "4007") {
		t.Errorf("FINs after segments not captured, sequence numbers %q; want 4001 (client) and 4007 (target)", fins)
	}
	tl := e.ssh("", "bastion", "export", id)
	mustContain(t, "timeline", tl.Stdout, "recording truncated", "passed unstored", "connection client fin", "connection server fin")
	if v := e.ssh("", "bastion", "verify", id); v.Code != 0 {
		t.Errorf("verify: %s", v)
	}
}

// Output masking keeps card numbers out of recordings at rest: a tcp
// target's recorded content (its timeline and its capture) holds them no
// more than a shell's recording or a PostgreSQL capture does, whichever
// side sent them, split across reads or not. The content is read as a
// protocol, not a screen: a card next to binary framing (a field length,
// the next field's digits) or in UTF-16 is masked too.
func TestForwardRecordingMasksCards(t *testing.T) {
	testenv.Require(t, "tshark")
	e := newEnv(t, envOptions{extraYAML: "rules:\n  - {name: cards, on: output, match: {detector: credit_card}, action: mask}\n"})
	c := e.dialBastion(t, e.alice)
	defer c.Close()
	conn, err := c.Dial("tcp", "echo:"+portOf(e.echo))
	if err != nil {
		t.Fatal(err)
	}
	framed := "\x00\x00\x00\x105105105105105100\x00\x00\x00\x041234"
	wide := "4\x000\x001\x002\x008\x008\x008\x008\x008\x008\x008\x008\x001\x008\x008\x001\x00"
	for _, part := range []string{"pay 4111 1111 ", "1111 1111 now; card 5500-0000-0000-0004 ok\n", framed + "\x02" + wide} {
		conn.Write([]byte(part))
		time.Sleep(100 * time.Millisecond) // two reads on the bastion
	}
	conn.(interface{ CloseWrite() error }).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, _ := io.ReadAll(conn)
	conn.Close()
	// The stream itself is a tunnel to a service: it passes as sent.
	if !bytes.Contains(got, []byte("4111 1111 1111 1111")) {
		t.Fatalf("the echo came back as %q", got)
	}
	id := e.tcpSession(t, "echo")
	exp := e.ssh("", "bastion", "export", id, "--format", "pcap")
	if exp.Code != 0 {
		t.Fatalf("export: %s", exp)
	}
	pcap := filepath.Join(t.TempDir(), "s.pcap")
	os.WriteFile(pcap, []byte(exp.Stdout), 0o600)
	client, server := followRaw(t, tshark(t, pcap, "-q", "-z", "follow,tcp,raw,0"))
	for _, b := range [][]byte{client, server} {
		if bytes.Contains(b, []byte("4111 1111")) || bytes.Contains(b, []byte("5500-0000")) ||
			bytes.Contains(b, []byte("510510")) || bytes.Contains(b, []byte("4\x000\x001\x002\x008")) {
			t.Errorf("the recording holds a card number: %q", b)
		}
		if !bytes.Contains(b, []byte("pay **** **** **** 1111 now; card ****-****-****-0004 ok\n")) ||
			!bytes.Contains(b, []byte("\x00\x00\x00\x10************5100\x00\x00\x00\x041234")) ||
			!bytes.Contains(b, []byte(strings.Repeat("*\x00", 12)+"1\x008\x008\x001\x00")) {
			t.Errorf("the recording lacks the masked exchange: %q", b)
		}
	}
	tl := e.ssh("", "bastion", "export", id)
	if strings.Contains(tl.Stdout, "31 31 31 31 20 31 31 31") || strings.Contains(tl.Stdout, "4111 1111") {
		t.Errorf("the timeline shows a card number:\n%s", tl.Stdout)
	}
}

// TestForwardRecordingMasksCardsBeforeFraming sends database rows through a
// forward whose card column is followed by framing that is a digit: a
// MySQL row with the card last and the next row's packet length (53 bytes,
// 0x35), and a PostgreSQL DataRow with the card before a 48 to 57 byte
// column (length 00 00 00 34 after NULs). The recording must not hold them.
func TestForwardRecordingMasksCardsBeforeFraming(t *testing.T) {
	testenv.Require(t, "tshark")
	e := newEnv(t, envOptions{extraYAML: "rules:\n  - {name: cards, on: output, match: {detector: credit_card}, action: mask}\n"})
	c := e.dialBastion(t, e.alice)
	defer c.Close()
	conn, err := c.Dial("tcp", "echo:"+portOf(e.echo))
	if err != nil {
		t.Fatal(err)
	}
	mysql := "\x18\x00\x00\x02\x06alice1\x104111111111111111" + "5\x00\x00\x03\x03bob\x10" + strings.Repeat("x", 52)
	pg := "D\x00\x00\x00\x4e\x00\x02\x00\x00\x00\x105105105105105100\x00\x00\x004" + strings.Repeat("y", 52) + "C\x00\x00\x00\x0dSELECT 1\x00"
	for _, part := range []string{mysql, pg} {
		conn.Write([]byte(part))
		time.Sleep(100 * time.Millisecond)
	}
	conn.(interface{ CloseWrite() error }).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, _ := io.ReadAll(conn)
	conn.Close()
	if !bytes.Contains(got, []byte("4111111111111111")) {
		t.Fatalf("the echo came back as %q", got)
	}
	id := e.tcpSession(t, "echo")
	exp := e.ssh("", "bastion", "export", id, "--format", "pcap")
	if exp.Code != 0 {
		t.Fatalf("export: %s", exp)
	}
	pcap := filepath.Join(t.TempDir(), "s.pcap")
	os.WriteFile(pcap, []byte(exp.Stdout), 0o600)
	client, server := followRaw(t, tshark(t, pcap, "-q", "-z", "follow,tcp,raw,0"))
	for _, b := range [][]byte{client, server} {
		if bytes.Contains(b, []byte("411111111111")) || bytes.Contains(b, []byte("510510510510")) {
			t.Errorf("the recording holds a card number: %q", b)
		}
		if !bytes.Contains(b, []byte("\x10************11115\x00\x00\x03")) ||
			!bytes.Contains(b, []byte("\x00\x00\x00\x10************5100\x00\x00\x004yy")) {
			t.Errorf("the recording lacks the masked rows: %q", b)
		}
	}
}

// env_allow admits variables a target's shell may set for the user, but
// never those that change what a judged command runs: an exported bash
// function (BASH_FUNC_name%%) replaces a command by name, LD_PRELOAD loads
// code into it, BASH_ENV, SHELLOPTS with PS4, PATH and the like change
// what a shell runs. A config that admits every name ("*", with a target's
// AcceptEnv *) must not turn an allowed `echo` into a refused `rm -rf`.
func TestEnvNeverChangesWhatRuns(t *testing.T) {
	e := newEnv(t, envOptions{
		extraYAML: "rules:\n  - {name: no-rm-rf, on: command, match: {command: \"rm -rf *\"}, action: block}\n",
		sshdExtra: []string{"AcceptEnv *"},
		envAllow:  []string{"*"},
	})
	hostCA := e.app.Keys.HostCA.PublicKey().Marshal()
	checker := &ssh.CertChecker{IsHostAuthority: func(a ssh.PublicKey, _ string) bool { return bytes.Equal(a.Marshal(), hostCA) }}
	c, err := ssh.Dial("tcp", e.app.SSHAddr(), &ssh.ClientConfig{User: "root@web1", Auth: []ssh.AuthMethod{ssh.PublicKeys(e.alice.CertSigner(t))},
		HostKeyCallback: checker.CheckHostKey, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run := func(name, value, cmd string) string {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Setenv(name, value) // refused or not, the command runs
		out, _ := s.CombinedOutput(cmd)
		return string(out)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	for _, v := range [][2]string{
		{"BASH_FUNC_echo%%", "() { rm -rf " + victim + "; }"},
		{"BASH_FUNC_echo()", "() { rm -rf " + victim + "; }"},
		{"LD_PRELOAD", "/nonexistent/evil.so"},
		{"SHELLOPTS", "xtrace"},
		{"PS4", "$(rm -rf " + victim + ")"},
		{"BASH_ENV", "/nonexistent/rc"},
		{"PATH", "/nonexistent"},
		{"GCONV_PATH", "/nonexistent"},
		{"GIT_SSH_COMMAND", "rm -rf " + victim},
	} {
		os.MkdirAll(victim, 0o755)
		out := run(v[0], v[1], "echo hi; env")
		if !exists(victim) {
			t.Errorf("%s: the victim was deleted past rule no-rm-rf: %q", v[0], out)
		}
		if strings.Contains(out, "\n"+v[0]+"="+v[1]) || strings.Contains(out, "ld.so") {
			t.Errorf("%s reached the target: %q", v[0], out)
		}
	}
	// Names that change nothing that runs still pass.
	if out := run("APP_MODE", "blue", "echo mode=$APP_MODE"); !strings.Contains(out, "mode=blue") {
		t.Errorf("an ordinary variable did not pass: %q", out)
	}
	if out := run("GIT_AUTHOR_NAME", "Ada", "echo author=$GIT_AUTHOR_NAME"); !strings.Contains(out, "author=Ada") {
		t.Errorf("GIT_AUTHOR_NAME did not pass: %q", out)
	}
}
