package bastion_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// TestForgedCertificateNotAttributed: a refused certificate is audited
// with the user it names only when the bastion's user CA signed it (it
// expired, was revoked, came from the wrong address). Anyone can make a
// certificate naming alice with their own CA, or with the user CA's public
// key as signer and a signature that does not verify; such a refusal was
// recorded as alice's failed login, from the attacker's address, so the
// audit log (and `bastion audit`, the console's filter by user) blamed
// whoever the attacker named. And a card number in the key ID the client
// chose is masked there, as in everything the bastion keeps.
func TestForgedCertificateNotAttributed(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, rogueKey, _ := ed25519.GenerateKey(rand.Reader)
	rogue, _ := ssh.NewSignerFromKey(rogueKey)
	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	user, _ := ssh.NewSignerFromKey(userKey)
	userCA, err := ssh.NewPublicKey(e.app.Keys.UserCA.PublicKey().(ssh.CryptoPublicKey).CryptoPublicKey())
	if err != nil {
		t.Fatal(err)
	}
	cert := func(signedByUserCA bool) *ssh.Certificate {
		c := &ssh.Certificate{Key: user.PublicKey(), Serial: 42, CertType: ssh.UserCert, KeyId: "user=alice forged 4111111111111111",
			ValidPrincipals: []string{"alice"}, ValidBefore: uint64(time.Now().Add(time.Hour).Unix()),
			Permissions: ssh.Permissions{Extensions: map[string]string{"issuer@bastionhq.dev": "https://idp.test", "subject@bastionhq.dev": "u-alice", "groups@bastionhq.dev": `["dev"]`}}}
		if err := c.SignCert(rand.Reader, rogue); err != nil {
			t.Fatal(err)
		}
		if signedByUserCA {
			c.SignatureKey = userCA // the user CA's public key, the rogue key's signature
		}
		return c
	}
	// And one of ours, revoked: its refusal is alice's.
	ours, _, err := e.app.Authority.SignUser(ca.Identity{User: "alice", Issuer: "https://idp.test", Subject: "u-alice", Groups: []string{"dev"}}, user.PublicKey(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.app.Store.Revoke(ours.Serial, "test", "lost"); err != nil {
		t.Fatal(err)
	}
	dial := func(c *ssh.Certificate) error {
		signer, err := ssh.NewCertSigner(c, user)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := ssh.Dial("tcp", e.app.SSHAddr(), &ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: e.hostKeys(), Timeout: 10 * time.Second})
		if err == nil {
			conn.Close()
		}
		return err
	}
	// Revocations reach the server within about a second.
	testenv.WaitFor(t, 30*time.Second, "the revocation to reach the server", func() bool { return dial(ours) != nil })
	since := time.Now()
	for _, c := range []*ssh.Certificate{cert(false), cert(true), ours} {
		if dial(c) == nil {
			t.Fatal("a forged or revoked certificate logged in")
		}
	}
	var refused int
	if err := e.app.Store.AuditEvents(since, func(ev recorder.AuditEvent) error {
		if ev.Type != "ssh.login" || ev.Outcome != "refused" {
			return nil
		}
		refused++
		// A card number the client put in its certificate is not kept.
		if strings.Contains(fmt.Sprint(ev), "4111111111111111") || strings.Contains(ev.Fields["key_id"], "4111") {
			t.Errorf("a card number in a refused certificate's key ID was kept: %+v", ev)
		}
		if ev.Fields["serial"] == fmt.Sprint(ours.Serial) {
			if ev.User != "alice" {
				t.Errorf("our revoked certificate's refusal is attributed to %q, want alice", ev.User)
			}
			return nil
		}
		if ev.User != "" || ev.Fields["claimed_principal"] != "alice" {
			t.Errorf("a forged certificate's refusal is attributed to user %q (claimed %q; %s)", ev.User, ev.Fields["claimed_principal"], ev.Reason)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if refused != 3 {
		t.Fatalf("%d refusals audited, want 3", refused)
	}
}
