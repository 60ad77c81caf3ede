package bastion

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/internal/safetext"
)

// `targets hostkey NAME`: the host key an SSH target offers the bastion,
// as the bastion sees it when it dials the target's address, printed as
// the `host_key:` line that pins it and its SHA256 fingerprint, for an
// operator to compare with the target's own (`ssh-keygen -lf`) and paste
// into the config. It pins nothing itself. Auditors may ask about any
// target; other callers about the targets their roles reach.

// plainHostKeyAlgorithms are the host key algorithms asked for, most
// preferred first: plain keys only, so a target that also has a host
// certificate shows the key a pin needs.
var plainHostKeyAlgorithms = []string{
	gossh.KeyAlgoED25519,
	gossh.KeyAlgoECDSA256, gossh.KeyAlgoECDSA384, gossh.KeyAlgoECDSA521,
	gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256,
}

// TargetHostKey is what `targets hostkey --json` prints.
type TargetHostKey struct {
	Target      string `json:"target"`
	Address     string `json:"address"`
	HostKey     string `json:"host_key"` // authorized_keys format, as host_key: takes it
	Fingerprint string `json:"fingerprint"`
	// Pinned says how it compares with the target's config: "matches",
	// "differs" (host_key pins another key), or "" (no host_key).
	Pinned string `json:"pinned,omitempty"`
}

func (s *Server) adminTargetHostKey(ctx context.Context, c Caller, args []string, aio AdminIO) int {
	var name string
	js := false
	for _, a := range args {
		switch {
		case a == "--json":
			js = true
		case strings.HasPrefix(a, "-") || name != "":
			fmt.Fprintf(aio.Stderr, "bastion: targets hostkey: unknown argument %q\nUsage: bastion targets hostkey NAME [--json]\n", safetext.Printable(a))
			return 2
		default:
			name = a
		}
	}
	if name == "" {
		fmt.Fprintf(aio.Stderr, "bastion: targets hostkey: which target?\nUsage: bastion targets hostkey NAME [--json]\n")
		return 2
	}
	pol := s.cfg.Policy()
	t, ok := pol.Target(name)
	visible := ok && (c.Auditor || slices.ContainsFunc(pol.Targets(policyIdentity(c.Identity)), func(ta policy.TargetAccess) bool { return ta.Name == name }))
	if !visible {
		fmt.Fprintf(aio.Stderr, "bastion: targets hostkey: no target %q that you may reach; see `bastion targets`\n", safetext.Printable(name))
		return 1
	}
	if t.Kind != policy.KindSSH {
		fmt.Fprintf(aio.Stderr, "bastion: targets hostkey: %s is a %s target: only SSH targets have a host key to pin\n", t.Name, t.Kind)
		return 1
	}
	key, err := s.probeHostKey(ctx, t)
	if err != nil {
		fmt.Fprintf(aio.Stderr, "bastion: targets hostkey: %v\n", err)
		return 1
	}
	out := TargetHostKey{
		Target:      t.Name,
		Address:     t.Address,
		HostKey:     strings.TrimSpace(string(gossh.MarshalAuthorizedKey(key))),
		Fingerprint: gossh.FingerprintSHA256(key),
	}
	if t.HostKey != nil {
		out.Pinned = "differs"
		if string(t.HostKey.Marshal()) == string(key.Marshal()) {
			out.Pinned = "matches"
		}
	}
	s.audit(Event{Type: "target.hostkey", Identity: c.Identity, Target: t.Name, Outcome: "shown",
		Fields: map[string]string{"fingerprint": out.Fingerprint, "remote_addr": c.RemoteAddr}})
	if js {
		return writeJSONLine(aio, out)
	}
	note := ""
	switch out.Pinned {
	case "matches":
		note = "; the config pins this key already"
	case "differs":
		note = fmt.Sprintf("; the config pins ANOTHER key, %s", gossh.FingerprintSHA256(t.HostKey))
	}
	fmt.Fprintf(aio.Stdout, "# %s at %s offers %s %s%s\n", t.Name, t.Address, key.Type(), out.Fingerprint, note)
	fmt.Fprintf(aio.Stdout, "# compare it with the target's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) before pinning it\n")
	fmt.Fprintf(aio.Stdout, "host_key: %q\n", out.HostKey)
	return 0
}

// errGotKey ends a probe's handshake once the host key is known.
var errGotKey = errors.New("host key received")

// probeHostKey dials t's address as a session would and returns the plain
// host key it offers (the pinned key's algorithm first, when there is
// one), without authenticating.
func (s *Server) probeHostKey(ctx context.Context, t *policy.Target) (gossh.PublicKey, error) {
	algos := plainHostKeyAlgorithms
	if t.HostKey != nil {
		algos = append(hostKeyAlgorithms(t.HostKey.Type()), algos...)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	conn, err := s.dialTarget(ctx, t, 0)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var got gossh.PublicKey
	_, _, _, err = gossh.NewClientConn(conn, t.Address, &gossh.ClientConfig{
		Config: sshConfig(),
		User:   "bastion-hostkey",
		HostKeyCallback: func(_ string, _ net.Addr, key gossh.PublicKey) error {
			got = key
			return errGotKey // stop here: nothing is authenticated, nothing trusted
		},
		HostKeyAlgorithms: algos,
		ClientVersion:     "SSH-2.0-bastion",
	})
	if got != nil {
		return got, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("target %s: connection timed out", t.Name)
	}
	return nil, fmt.Errorf("target %s: %w", t.Name, err)
}
