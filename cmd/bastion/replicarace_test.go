package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// postCert asks the replica at base for a certificate with the ID token
// tok, as `bastion login` does, and returns the HTTP status and body.
func postCert(t *testing.T, base, tok string) (int, string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(ca.CertRequest{IDToken: tok, PublicKey: string(ssh.MarshalAuthorizedKey(sp))})
	resp, err := http.Post(base+ca.PathCertificate, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReplicaRaces runs three replicas on one PostgreSQL store and races
// them: a (the usual clock), b (a clock the test moves) and c (a clock
// three minutes behind, as a replica whose NTP stopped).
func TestReplicaRaces(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	t.Setenv("BASTION_TEST_STORE_DSN", pg.StoreDSN(t, "bastion"))
	// A second rule holds "touch .../quick-*" for 3 s only: approvals
	// racing the timeout.
	yaml := strings.Replace(clusterYAML, "timeout: 60s}\n", "timeout: 60s}\n  - {name: quick, on: command, match: {regex: \"^touch .*/quick\"}, action: approve, approvers: [approvers], timeout: 3s}\n", 1)
	a := newWorldWith(t, yaml+"approvals: {max_pending: 2}\n")
	var skewB atomic.Int64
	b := a.newReplicaOpts(t, "b", app.Options{Now: func() time.Time { return time.Now().Add(time.Duration(skewB.Load())) }})
	c := a.newReplicaOpts(t, "c", app.Options{Now: func() time.Time { return time.Now().Add(-3 * time.Minute) }})

	mint := func(t *testing.T, exp time.Time) string {
		t.Helper()
		claims, err := a.idp.IDTokenClaims("u-alice", "bastion")
		if err != nil {
			t.Fatal(err)
		}
		if !exp.IsZero() {
			claims["exp"] = exp.Unix()
		}
		tok, err := a.idp.MintIDToken(claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	t.Run("one ID token at two replicas at once", func(t *testing.T) {
		for round := 0; round < 40; round++ {
			tok := mint(t, time.Time{})
			var wg sync.WaitGroup
			var ok atomic.Int32
			start := make(chan struct{})
			for _, w := range []*world{a, b, a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					if code, _ := postCert(t, w.url(), tok); code == http.StatusOK {
						ok.Add(1)
					}
				}()
			}
			close(start)
			wg.Wait()
			if n := ok.Load(); n != 1 {
				t.Fatalf("round %d: one ID token bought %d certificates", round, n)
			}
		}
	})

	t.Run("a token spent, swept, then shown to a replica whose clock lags", func(t *testing.T) {
		exp := time.Now().Add(3 * time.Second)
		tok := mint(t, exp)
		if code, body := postCert(t, a.url(), tok); code != http.StatusOK {
			t.Fatalf("first use at a: %d %s", code, body)
		}
		time.Sleep(time.Until(exp) + 1500*time.Millisecond)
		// b's next audit commit sweeps spent tokens that expired by its
		// clock (a minute on since its last sweep).
		skewB.Store(int64(2 * time.Minute))
		if code, body := postCert(t, b.url(), mint(t, time.Now().Add(10*time.Minute))); code != http.StatusOK {
			t.Fatalf("a login at b: %d %s", code, body)
		}
		// c's clock says the token has minutes to run.
		if code, body := postCert(t, c.url(), tok); code == http.StatusOK {
			t.Fatalf("a spent ID token bought a second certificate at a replica whose clock lags: %s", body)
		}
	})

	t.Run("max_pending across replicas, requests made at once", func(t *testing.T) {
		// Sessions on connections already open to each replica, their
		// commands sent together: no ssh start-up spreads them out.
		u := a.another()
		u.loginDirect(t, "u-alice")
		st, cert := u.loginState(t)
		signer, hostKeys := loginSigner(t, st, cert)
		dir := t.TempDir()
		var sessions []*ssh.Session
		for _, w := range []*world{a, b} {
			jc, err := jump(w.app.SSHAddr(), st.User, "web1:22", "root", signer, hostKeys)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { jc.Close() })
			for range 6 {
				s, err := jc.NewSession()
				if err != nil {
					t.Fatal(err)
				}
				sessions = append(sessions, s)
			}
		}
		since := time.Now()
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, s := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s.Start("touch " + filepath.Join(dir, fmt.Sprintf("approve-%d", i)))
			}()
		}
		close(start)
		wg.Wait()
		// Once every request is held or refused (each audited), alice has
		// max_pending waiting, no more.
		testenv.WaitFor(t, time.Minute, "every request held or refused", func() bool {
			n := 0
			a.app.Store.AuditEvents(since, func(ev recorder.AuditEvent) error {
				if ev.Type == "command.hold" && strings.Contains(ev.Fields["command"], dir) {
					n++
				}
				return nil
			})
			return n == len(sessions)
		})
		list, err := a.app.Store.Approvals().Pending(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range list {
			if strings.Contains(string(p.Request), dir) {
				n++
			}
		}
		if n != 2 {
			t.Fatalf("alice has %d requests waiting, with approvals.max_pending 2", n)
		}
	})

	t.Run("two approvers decide one request at two replicas at once", func(t *testing.T) {
		u := a.another()
		u.loginDirect(t, "u-alice")
		st, cert := u.loginState(t)
		signer, hostKeys := loginSigner(t, st, cert)
		jc, err := jump(a.app.SSHAddr(), st.User, "web1:22", "root", signer, hostKeys)
		if err != nil {
			t.Fatal(err)
		}
		defer jc.Close()
		carolA, carolB := a.another(), b.another()
		carolA.loginDirect(t, "u-carol")
		carolB.loginDirect(t, "u-carol")
		dir := t.TempDir()
		for round, pair := range [][2]string{{"approve", "deny"}, {"approve", "approve"}} {
			since := time.Now()
			sess, err := jc.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			sess.Stdout = &out
			file := filepath.Join(dir, fmt.Sprintf("approve-%d", round))
			if err := sess.Start("touch " + file + " && echo ran-once"); err != nil {
				t.Fatal(err)
			}
			var id string
			for deadline := time.Now().Add(10 * time.Second); id == ""; time.Sleep(50 * time.Millisecond) {
				list, _ := a.app.Store.Approvals().Pending(time.Now())
				for _, p := range list {
					if bytes.Contains(p.Request, []byte(file)) {
						id = p.ID
					}
				}
				if time.Now().After(deadline) {
					t.Fatal("the command was not held")
				}
			}
			start := make(chan struct{})
			codes := make([]int, 2)
			var wg sync.WaitGroup
			for i, w := range []*world{carolA, carolB} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					codes[i] = w.run(nil, pair[i], id).Code
				}()
			}
			close(start)
			wg.Wait()
			if (codes[0] == 0) == (codes[1] == 0) {
				t.Fatalf("round %d (%s at a, %s at b): exit codes %v, want exactly one decision", round, pair[0], pair[1], codes)
			}
			approved := pair[0] == "approve" && codes[0] == 0 || pair[1] == "approve" && codes[1] == 0
			sess.Wait()
			sess.Close()
			if got := strings.Count(out.String(), "ran-once"); got != map[bool]int{true: 1, false: 0}[approved] {
				t.Fatalf("round %d: approved %v, the command ran %d times", round, approved, got)
			}
			decisions := 0
			a.app.Store.AuditEvents(since, func(ev recorder.AuditEvent) error {
				if ev.Fields["request"] == id && (ev.Type == "command.approve" || ev.Type == "command.deny") {
					decisions++
				}
				return nil
			})
			if decisions != 1 {
				t.Fatalf("round %d: %d decisions audited for request %s", round, decisions, id)
			}
		}
	})

	t.Run("an approval at b as the request times out at a", func(t *testing.T) {
		u := a.another()
		u.loginDirect(t, "u-alice")
		st, cert := u.loginState(t)
		signer, hostKeys := loginSigner(t, st, cert)
		jc, err := jump(a.app.SSHAddr(), st.User, "web1:22", "root", signer, hostKeys)
		if err != nil {
			t.Fatal(err)
		}
		defer jc.Close()
		carolB := b.another()
		carolB.loginDirect(t, "u-carol")
		dir := t.TempDir()
		for round, early := range []time.Duration{600 * time.Millisecond, 450 * time.Millisecond, 300 * time.Millisecond} {
			since := time.Now()
			sess, err := jc.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			sess.Stdout = &out
			file := filepath.Join(dir, fmt.Sprintf("quick-%d", round))
			if err := sess.Start("touch " + file + " && echo ran-once"); err != nil {
				t.Fatal(err)
			}
			var id string
			var expires time.Time
			testenv.WaitFor(t, 10*time.Second, "the request", func() bool {
				list, _ := a.app.Store.Approvals().Pending(time.Now())
				for _, p := range list {
					if bytes.Contains(p.Request, []byte(file)) {
						id, expires = p.ID, p.Expires
					}
				}
				return id != ""
			})
			time.Sleep(time.Until(expires.Add(-early)))
			r := carolB.run(nil, "approve", id)
			sess.Wait()
			sess.Close()
			ran := strings.Count(out.String(), "ran-once")
			var decisions []string
			a.app.Store.AuditEvents(since, func(ev recorder.AuditEvent) error {
				if ev.Fields["request"] == id && ev.Type != "command.hold" {
					decisions = append(decisions, ev.Type)
				}
				return nil
			})
			t.Logf("round %d (%v before the deadline): approve exit %d, ran %d, audited %v", round, early, r.Code, ran, decisions)
			switch {
			case ran > 1:
				t.Fatalf("round %d: the command ran %d times", round, ran)
			case (r.Code == 0) != (ran == 1):
				t.Fatalf("round %d: approve said %d (%s) but the command ran %d times", round, r.Code, r.Stderr, ran)
			case ran == 1 && strings.Join(decisions, " ") != "command.approve":
				t.Fatalf("round %d: ran, audited %v", round, decisions)
			case ran == 0 && (len(decisions) == 0 || decisions[0] == "command.approve" && !slices.Contains(decisions, "command.approve_void") || strings.Count(strings.Join(decisions, " "), "command.timeout") > 1):
				t.Fatalf("round %d: did not run, audited %v", round, decisions)
			}
		}
	})

	t.Run("every replica appends to the audit chain at once, one killed mid-append", func(t *testing.T) {
		proc, dURL := a.serveReplica(t, "d")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var issued atomic.Int32
		for _, url := range []string{a.url(), b.url(), c.url(), dURL, dURL} {
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						claims, _ := a.idp.IDTokenClaims("u-alice", "bastion")
						tok, _ := a.idp.MintIDToken(claims)
						body, _ := json.Marshal(ca.CertRequest{IDToken: tok, PublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"})
						resp, err := http.Post(url+ca.PathCertificate, "application/json", bytes.NewReader(body))
						if err != nil {
							continue // d is dead
						}
						if resp.StatusCode == http.StatusOK {
							issued.Add(1)
						}
						resp.Body.Close()
					}
				}()
			}
		}
		time.Sleep(1500 * time.Millisecond)
		proc.Process.Kill() // SIGKILL mid-append
		proc.Wait()
		time.Sleep(500 * time.Millisecond)
		close(stop)
		wg.Wait()
		if issued.Load() < 20 {
			t.Fatalf("only %d certificates issued", issued.Load())
		}
		t.Logf("%d certificates issued by four replicas, d killed after 1.5 s", issued.Load())
		admin := b.another()
		admin.loginDirect(t, "u-alice")
		if r := admin.run(nil, "verify", "--audit"); r.Code != 0 || !strings.Contains(r.Stdout, "intact") {
			t.Fatalf("verify --audit after %d issuances: %s", issued.Load(), r)
		}
	})

	t.Run("a session live at a, followed, exported and verified at b", func(t *testing.T) {
		u := a.another()
		u.loginDirect(t, "u-alice")
		st, cert := u.loginState(t)
		signer, hostKeys := loginSigner(t, st, cert)
		jc, err := jump(a.app.SSHAddr(), st.User, "web1:22", "root", signer, hostKeys)
		if err != nil {
			t.Fatal(err)
		}
		defer jc.Close()
		sess, err := jc.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		stdin, _ := sess.StdinPipe()
		if err := sess.Start("echo live-$((6*7)); cat"); err != nil {
			t.Fatal(err)
		}
		var id string
		testenv.WaitFor(t, 30*time.Second, "a's live session, as b reads it", func() bool {
			list, _ := b.app.Store.Sessions(recorder.SessionFilter{})
			for _, s := range list {
				if strings.Contains(s.Command, "live-$((6*7))") && s.Status == recorder.StatusLive {
					id = s.ID
				}
			}
			return id != ""
		})
		admin := b.another()
		admin.loginDirect(t, "u-alice")
		follow := admin.cli(nil, "export", id, "--follow")
		followed := &testenv.SyncBuffer{}
		follow.Stdout, follow.Stderr = followed, followed
		if err := follow.Start(); err != nil {
			t.Fatal(err)
		}
		defer follow.Process.Kill()
		testenv.WaitFor(t, 30*time.Second, "b's follower to show the output so far", func() bool { return strings.Contains(followed.String(), "live-42") })
		if r := admin.run(nil, "verify", id); r.Code != 0 || !strings.Contains(r.Stdout, "intact") {
			t.Fatalf("verify at b of a live session of a: %s", r)
		}
		io.WriteString(stdin, "typed-at-the-end\n")
		time.Sleep(500 * time.Millisecond)
		stdin.Close()
		sess.Wait()
		done := make(chan error, 1)
		go func() { done <- follow.Wait() }()
		select {
		case err := <-done:
			if err != nil || !strings.Contains(followed.String(), "typed-at-the-end") {
				t.Fatalf("b's follower at the end: %v\n%s", err, followed)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("b's follower did not end with the session:\n%s", followed)
		}
		if r := admin.run(nil, "verify", id); r.Code != 0 || !strings.Contains(r.Stdout, "intact") || !strings.Contains(r.Stdout, "sealed") {
			t.Fatalf("verify at b once ended: %s", r)
		}
	})

	t.Run("a serial revoked at a is refused by b", func(t *testing.T) {
		for round := range 5 {
			code, body := postCert(t, b.url(), mint(t, time.Time{}))
			if code != http.StatusOK {
				t.Fatalf("login at b: %d %s", code, body)
			}
			var cr ca.CertResponse
			json.Unmarshal([]byte(body), &cr)
			serial, _ := strconv.ParseUint(cr.Serial, 10, 64)
			if err := a.app.Store.Revoke(serial, "test", "race"); err != nil {
				t.Fatal(err)
			}
			// How soon is logged, not asserted: the machines are shared.
			revoked := time.Now()
			testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("round %d: b to refuse serial %d revoked at a", round, serial), func() bool { return b.app.Store.IsRevoked(serial) })
			t.Logf("round %d: b knew after %v", round, time.Since(revoked).Round(time.Millisecond))
		}
	})

	t.Run("revoke --user on a replica on time, a login issued by one whose clock runs ahead", func(t *testing.T) {
		skewB.Store(int64(90 * time.Second)) // within the two minutes certificates are backdated: targets take them
		defer skewB.Store(0)
		carol := b.another()
		cfg := carol.loginDirect(t, "u-carol") // b stamps the certificate 90 s ahead
		if out, err := carol.sshAs(cfg, "root@web1", "echo before").CombinedOutput(); err != nil {
			t.Fatalf("carol before the revocation: %v\n%s", err, out)
		}
		time.Sleep(1100 * time.Millisecond) // the revocation is later than the login, in whole seconds
		admin := a.another()
		admin.loginDirect(t, "u-alice")
		if r := admin.run(nil, "ca", "revoke", "--user", "carol", "--reason", "laptop stolen"); r.Code != 0 {
			t.Fatalf("revoke --user at a: %s", r)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := carol.sshAs(cfg, "root@web1", "echo still-in").CombinedOutput()
			if err != nil && !strings.Contains(string(out), "still-in") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a login issued before carol's revocation still works: %s", out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}
