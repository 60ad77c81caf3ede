package bastion_test

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/testenv"
)

// TestApprovalAfterCertExpiredDoesNotRun: with sessions.disconnect_expired_cert
// a session ends within a second of its certificate's expiry. A command
// held for approval in it, approved in that second, must not run: the
// release checks the certificate again, as it checks a revocation.
func TestApprovalAfterCertExpiredDoesNotRun(t *testing.T) {
	var ahead atomic.Int64
	e := newEnv(t, envOptions{
		now:       func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) },
		sessions:  ", disconnect_expired_cert: true",
		extraYAML: controlRules,
	})
	id := ca.Identity{User: "carol", Issuer: "https://idp.test", Subject: "u-carol", Groups: []string{"dev"}}
	k := e.userKey("carol", id, 10*time.Minute)
	cfg := e.writeSSHConfig("carol", k)
	touched := filepath.Join(t.TempDir(), "approve-after-expiry")
	p := testenv.StartPTY(t, 100, 30, "ssh", "-F", cfg, "root@web1", "touch "+touched)
	m := requestRE.FindStringSubmatch(p.Expect("Ctrl-C cancels", 20*time.Second))
	if m == nil {
		t.Fatalf("no request ID in %q", p.Output())
	}
	ahead.Store(int64(time.Until(time.Unix(int64(k.Cert.ValidBefore), 0)) + time.Second))
	bob := bastion.Caller{Identity: ca.Identity{User: "bob", Issuer: "https://idp.test", Subject: "u-bob", Groups: []string{"sre"}}}
	if _, err := e.app.SSH.Decide(bob, m[1], true, ""); err != nil {
		t.Logf("the approval came after the session ended: %v", err)
	}
	p.Wait(20 * time.Second)
	if exists(touched) {
		t.Fatalf("a command held in a session whose certificate had expired ran when approved:\n%s", p.Output())
	}
}
