package bastion_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/testenv"
)

// watchEnd reads c until it ends (an x/crypto forward has no read
// deadline) and closes the returned channel then.
func watchEnd(c net.Conn) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 512)
		for {
			if _, err := c.Read(b); err != nil {
				return
			}
		}
	}()
	return done
}

func endsWithin(done <-chan struct{}, d time.Duration) bool {
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// A reload that points a target somewhere else — another address, another
// port, another kind — withdraws access to where a live forward goes: the
// config no longer names that destination, so the forward ends, as a new
// one would reach only the new one. (A tcp target made kind postgres must
// not keep an uninspected tunnel past its SQL rules.)
func TestReloadRepointingTargetEndsForwards(t *testing.T) {
	e := newEnv(t, envOptions{})
	other := startEcho(t)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("secret\n"), 0o600)
	echoIdx := -1
	for i, tg := range e.app.Config.Targets {
		if tg.Name == "echo" {
			echoIdx = i
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*config.Target)
	}{
		{"address", func(tg *config.Target) { tg.Address = other }},
		{"kind", func(tg *config.Target) { tg.Kind = "postgres"; tg.PasswordFile = pw }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := *e.app.Config
			base.Targets = append([]config.Target(nil), base.Targets...)
			if err := e.app.Reload(&base); err != nil {
				t.Fatal(err)
			}
			c := e.dialBastion(t, e.alice)
			defer c.Close()
			fwd, err := c.Dial("tcp", "echo:"+portOf(e.echo))
			if err != nil {
				t.Fatal(err)
			}
			defer fwd.Close()
			ended := watchEnd(fwd)
			if endsWithin(ended, time.Second) {
				t.Fatal("the forward ended before the reload")
			}
			cfg := base
			cfg.Targets = append([]config.Target(nil), base.Targets...)
			tc.change(&cfg.Targets[echoIdx])
			if err := e.app.Reload(&cfg); err != nil {
				t.Fatal(err)
			}
			if !endsWithin(ended, 10*time.Second) {
				t.Fatalf("a forward to echo at %s went on after a reload changed the target's %s", e.echo, tc.name)
			}
		})
	}
	_ = fmt.Sprint

	// An ssh session too: web1 now names another address.
	cfg := *e.app.Config
	cfg.Targets = append([]config.Target(nil), cfg.Targets...)
	if err := e.app.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	kept := testenv.StartPTY(t, 80, 24, "ssh", "-F", e.cfgPath, "root@web1", "echo started; sleep 20; echo still-here")
	kept.Expect("started", 20*time.Second)
	cfg.Targets = append([]config.Target(nil), cfg.Targets...)
	cfg.Targets[0].Address = "web1.invalid:22"
	if err := e.app.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	kept.Expect("reload withdrew this access: target web1 is now at web1.invalid:22", 10*time.Second)
}

// Cloud instance metadata services hand out the bastion host's own
// credentials. 169.254.169.254 is link-local and refused as such; AWS's
// IPv6 endpoint (fd00:ec2::254, unique-local) and Alibaba's (100.100.100.200,
// shared address space) are not link-local, and must be refused too.
func TestForwardNeverReachesMetadataServices(t *testing.T) {
	e := newEnv(t, envOptions{targets: []string{
		`{name: imds6, kind: tcp, address: "[fd00:ec2::254]:80"}`,
		`{name: imdsali, kind: tcp, address: "100.100.100.200:80"}`,
		`{name: imdsmapped, kind: tcp, address: "[::ffff:100.100.100.200]:80"}`,
	}, extraYAML: "  - {name: meta, groups: [dev], targets: [\"imds*\"]}\n"})
	c := e.dialBastion(t, e.alice)
	defer c.Close()
	for _, dest := range []string{"imds6:80", "imdsali:80", "imdsmapped:80"} {
		conn, err := c.Dial("tcp", dest)
		if err == nil {
			conn.Close()
			t.Fatalf("a forward to %s was opened", dest)
		}
		mustContain(t, dest, err.Error(), "metadata service")
	}
}

// What a client may ask besides direct-tcpip to a named target: remote
// forwards (TCP and unix sockets), unix-socket channels, agent and X11
// channels, a forward whose originator lies, and forwards inside a hop.
func TestForwardKindsRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dialBastion(t, e.alice)
	defer c.Close()
	if l, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
		t.Fatal("tcpip-forward was granted")
	}
	if l, err := c.ListenUnix(filepath.Join(t.TempDir(), "s")); err == nil {
		l.Close()
		t.Fatal("streamlocal-forward was granted")
	}
	for _, typ := range []string{"direct-streamlocal@openssh.com", "auth-agent@openssh.com", "x11", "forwarded-tcpip", "tun@openssh.com"} {
		ch, _, err := c.OpenChannel(typ, ssh.Marshal(struct {
			Path     string
			Reserved string
			R2       uint32
		}{Path: "/var/run/docker.sock"}))
		if err == nil {
			ch.Close()
			t.Fatalf("channel %s was opened", typ)
		}
	}
	// The originator address is the client's to choose: it changes nothing.
	if conn, err := c.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 22}); err == nil {
		conn.Close()
		t.Fatal("a forward to an address was opened")
	}
	// The stock client: -R and -D.
	r := e.ssh("", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22", "bastion", "true")
	if r.Code == 0 {
		t.Fatalf("ssh -R: %s", r)
	}
}

// Refused, failed and finished forwards give their channel slot back: a
// client that provokes refusals does not lock itself, or a ControlMaster's
// other users, out of the connection.
func TestForwardSlotsGivenBack(t *testing.T) {
	e := newEnv(t, envOptions{sessions: ", max_channels: 2", targets: []string{
		fmt.Sprintf(`{name: dead, kind: tcp, address: "127.0.0.1:%d"}`, testenv.FreePort(t)),
	}, extraYAML: "  - {name: deadrole, groups: [dev], targets: [dead]}\n"})
	c := e.dialBastion(t, e.alice)
	defer c.Close()
	for i := 0; i < 20; i++ {
		if conn, err := c.Dial("tcp", "127.0.0.1:22"); err == nil {
			conn.Close()
			t.Fatal("forward to an address opened")
		}
		if conn, err := c.Dial("tcp", "dead:"+portOf(e.echo)); err == nil {
			conn.Close()
			t.Fatal("forward to a port no role grants opened")
		}
		if conn, err := c.Dial("tcp", "dead:1"); err == nil {
			conn.Close()
			t.Fatal("forward to a port no role grants opened")
		}
		conn, err := c.Dial("tcp", "echo:"+portOf(e.echo))
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		conn.Write([]byte("x"))
		conn.(interface{ CloseWrite() error }).CloseWrite()
		<-watchEnd(conn)
		conn.Close()
	}
	for _, name := range e.app.Config.Targets {
		if name.Name == "dead" {
			_, p, _ := net.SplitHostPort(name.Address)
			for i := 0; i < 5; i++ {
				if conn, err := c.Dial("tcp", "dead:"+p); err == nil {
					conn.Close()
					t.Fatal("forward to a dead port opened")
				}
			}
		}
	}
	var ok bool
	for i := 0; i < 100 && !ok; i++ {
		conn, err := c.Dial("tcp", "echo:"+portOf(e.echo))
		if err == nil {
			conn.Close()
			ok = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !ok {
		t.Fatal("channel slots were not given back")
	}
}
