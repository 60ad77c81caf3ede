package ca

import (
	"crypto/dsa" //nolint:staticcheck // only to prove DSA keys are refused
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func testKeys(t testing.TB) *Keys {
	t.Helper()
	k, err := LoadOrCreateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testAuthority(t testing.TB, now func() time.Time) *Authority {
	t.Helper()
	a, err := New(Config{Keys: testKeys(t), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func newEd25519(t testing.TB) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeysPersistAndArePrivate(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{userCAFile, targetCAFile, hostCAFile, dbCAKeyFile, hostKeyFile, sealKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, caDirName, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: got mode %o, want 600", f, fi.Mode().Perm())
		}
	}
	k2, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2]ssh.Signer{
		"user": {k1.UserCA, k2.UserCA}, "target": {k1.TargetCA, k2.TargetCA},
		"host": {k1.HostCA, k2.HostCA}, "hostkey": {k1.HostKey, k2.HostKey},
	} {
		if string(pair[0].PublicKey().Marshal()) != string(pair[1].PublicKey().Marshal()) {
			t.Errorf("%s CA changed between starts", name)
		}
	}
	if !k1.DBCA.Cert.Equal(k2.DBCA.Cert) {
		t.Error("database CA changed between starts")
	}
	// The four CA keys are distinct: one purpose each.
	seen := map[string]bool{}
	for _, s := range []ssh.Signer{k1.UserCA, k1.TargetCA, k1.HostCA, k1.HostKey} {
		m := string(s.PublicKey().Marshal())
		if seen[m] {
			t.Fatal("two purposes share a key")
		}
		seen[m] = true
	}
}

func TestKeysRefuseReadableByOthers(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreateKeys(dir); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, caDirName, userCAFile)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreateKeys(dir)
	if err == nil || !strings.Contains(err.Error(), "permissions 0644") {
		t.Fatalf("got %v, want a permissions error", err)
	}
	os.Chmod(p, 0o600)
	if err := os.Chmod(filepath.Join(dir, caDirName), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeys(dir); err == nil {
		t.Fatal("a world-readable CA directory was accepted")
	}
}

func TestIdentityRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := testAuthority(t, func() time.Time { return now })
	for _, id := range []Identity{
		{User: "alice", Issuer: "https://idp.example.com", Subject: "00u1", Groups: []string{"dev", "sre"}},
		{User: "ci-etl", Issuer: "https://ci.example.com", Subject: "repo:acme/etl:ref:refs/heads/main", Groups: []string{"etl"}, Workload: true},
		{User: "bob", Issuer: "https://idp.example.com", Subject: "00u2", SourceAddress: "10.0.0.0/8"},
		{User: "carol", Issuer: "https://idp.example.com", Subject: "00u3", Groups: []string{"R&D<eu>", `a"b\c`}},
	} {
		cert, got, err := a.SignUser(id, newEd25519(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		back, err := IdentityFromCertificate(cert)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, got) {
			t.Errorf("round trip:\n got %+v\nwant %+v", back, got)
		}
		if got.Serial == 0 {
			t.Error("zero serial")
		}
		if g := cert.Extensions[ExtGroups]; strings.Contains(g, `\u00`) {
			t.Errorf("groups extension %s: HTML escapes make a certificate several times its size", g)
		}
		if len(cert.ValidPrincipals) != 1 || cert.ValidPrincipals[0] != id.User {
			t.Errorf("principals %q, want exactly [%q]", cert.ValidPrincipals, id.User)
		}
		if !strings.Contains(cert.KeyId, id.User) || !strings.Contains(cert.KeyId, id.Issuer) {
			t.Errorf("key ID %q does not name user and issuer", cert.KeyId)
		}
		wantTTL := DefaultUserTTL
		if id.Workload {
			wantTTL = DefaultWorkloadTTL
		}
		if got, want := time.Unix(int64(cert.ValidBefore), 0), now.Add(wantTTL); !got.Equal(want) {
			t.Errorf("ValidBefore %v, want %v", got, want)
		}
		if time.Unix(int64(cert.ValidAfter), 0).After(now.Add(-time.Minute)) {
			t.Error("ValidAfter not backdated for clock skew")
		}
		checker := ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool {
			return string(k.Marshal()) == string(a.Keys().UserCA.PublicKey().Marshal())
		}, Clock: func() time.Time { return now }, SupportedCriticalOptions: []string{"source-address"}}
		if err := checker.CheckCert(id.User, cert); err != nil {
			t.Errorf("x/crypto rejects the certificate: %v", err)
		}
	}
}

func TestSerialsUnique(t *testing.T) {
	a := testAuthority(t, nil)
	seen := map[uint64]bool{}
	key := newEd25519(t)
	for range 2000 {
		_, id, err := a.SignUser(Identity{User: "a", Issuer: "i", Subject: "s"}, key, 0)
		if err != nil {
			t.Fatal(err)
		}
		if id.Serial == 0 || seen[id.Serial] {
			t.Fatalf("serial %d repeated or zero", id.Serial)
		}
		seen[id.Serial] = true
	}
}

func TestTTL(t *testing.T) {
	a := testAuthority(t, nil)
	for _, tc := range []struct {
		name     string
		workload bool
		req      time.Duration
		want     time.Duration
		err      bool
	}{
		{"default person", false, 0, time.Hour, false},
		{"shorter person", false, 10 * time.Minute, 10 * time.Minute, false},
		{"max person", false, 8 * time.Hour, 8 * time.Hour, false},
		{"above max", false, 9 * time.Hour, 0, true},
		{"negative", false, -time.Minute, 0, true},
		{"default workload", true, 0, 5 * time.Minute, false},
		{"workload above", true, time.Hour, 0, true},
		{"workload shorter", true, time.Minute, time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.TTL(tc.workload, tc.req)
			if tc.err {
				if !errors.Is(err, ErrTTL) {
					t.Fatalf("got %v, want ErrTTL", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestSanitizeUsername(t *testing.T) {
	for _, tc := range []struct {
		in        string
		fromEmail bool
		want      string // empty: refused
	}{
		{"alice@example.com", true, "alice"},
		{"Alice.Smith@Example.com", true, "alice.smith"},
		{"alice+ci@example.com", true, "alice"},
		{"root,deploy@example.com", true, ""},
		{"al ice@example.com", true, ""},
		{"alice\x1b[31m@example.com", true, ""},
		{"alice\n@example.com", true, ""},
		{"@example.com", true, ""},
		{"no-at-sign", true, ""},
		{"-rf@example.com", true, ""},
		{"1abc@example.com", true, ""},
		{strings.Repeat("a", 33) + "@x", true, ""},
		{"bob", false, "bob"},
		{"bob/../../etc", false, ""},
		{"élodie", false, ""},
		{"", false, ""},
	} {
		got, err := SanitizeUsername(tc.in, tc.fromEmail)
		if tc.want == "" {
			if err == nil {
				t.Errorf("SanitizeUsername(%q) = %q, want refusal", tc.in, got)
			} else if !errors.Is(err, ErrBadUsername) {
				t.Errorf("SanitizeUsername(%q): error %v is not ErrBadUsername", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("SanitizeUsername(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestCheckPublicKey(t *testing.T) {
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mk := func(k any) ssh.PublicKey {
		p, err := ssh.NewPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := testAuthority(t, nil)
	cert, _, err := a.SignUser(Identity{User: "a", Issuer: "i", Subject: "s"}, newEd25519(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	// x/crypto no longer parses DSA keys at all, so they never reach
	// CheckPublicKey: the HTTP test submits one and sees it refused.
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(dsaAuthorizedLine(t))); err == nil {
		t.Error("x/crypto parsed a DSA key; CheckPublicKey must refuse it")
	}
	for _, tc := range []struct {
		name string
		key  ssh.PublicKey
		ok   bool
	}{
		{"ed25519", newEd25519(t), true},
		{"ecdsa p256", mk(&ec.PublicKey), true},
		{"rsa 2048", mk(&rsa2048.PublicKey), true},
		{"rsa 1024", mk(&rsa1024.PublicKey), false},
		{"certificate", cert, false},
		{"nil", nil, false},
	} {
		err := CheckPublicKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("%s: got %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrWeakKey) {
			t.Errorf("%s: %v is not ErrWeakKey", tc.name, err)
		}
	}
}

// TestSshKeygenReadsCertificates checks issued certificates with the real
// OpenSSH ssh-keygen -L, and the CA export lines with ssh-keygen -l.
func TestSshKeygenReadsCertificates(t *testing.T) {
	keygen := requireTool(t, "ssh-keygen")
	a := testAuthority(t, nil)
	cert, _, err := a.SignUser(Identity{User: "alice", Issuer: "https://idp.example.com", Subject: "u1", Groups: []string{"dev"}}, newEd25519(t), 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "id-cert.pub")
	os.WriteFile(p, ssh.MarshalAuthorizedKey(cert), 0o600)
	out, err := exec.Command(keygen, "-L", "-f", p).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -L: %v\n%s", err, out)
	}
	for _, want := range []string{"user certificate", "Principals: \n                alice", "Signing CA: ED25519", ExtGroups, "permit-pty"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ssh-keygen -L output lacks %q:\n%s", want, out)
		}
	}
	for name, line := range map[string]string{"user": a.Keys().UserCALine(), "target": a.Keys().TargetCALine()} {
		f := filepath.Join(dir, name+".pub")
		os.WriteFile(f, []byte(line+"\n"), 0o600)
		if out, err := exec.Command(keygen, "-l", "-f", f).CombinedOutput(); err != nil {
			t.Errorf("%s CA line rejected by ssh-keygen: %v\n%s", name, err, out)
		}
	}
	line := a.Keys().HostCALine("*")
	key, ok := strings.CutPrefix(line, "@cert-authority * ")
	if !ok {
		t.Fatalf("host CA line %q lacks the @cert-authority marker", line)
	}
	kh := filepath.Join(dir, "host_ca.pub")
	os.WriteFile(kh, []byte(key+"\n"), 0o600)
	if out, err := exec.Command(keygen, "-l", "-f", kh).CombinedOutput(); err != nil || !strings.Contains(string(out), "ED25519") {
		t.Errorf("host CA key rejected by ssh-keygen: %v\n%s", err, out)
	}
}

func TestDBCertificates(t *testing.T) {
	a := testAuthority(t, nil)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c, err := a.SignDBClient(key.Public(), "app_ro", 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(a.Keys().DBCA.Cert)
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate does not verify against the database CA: %v", err)
	}
	if c.Subject.CommonName != "app_ro" {
		t.Errorf("CN %q, want app_ro", c.Subject.CommonName)
	}
	if c.NotAfter.Sub(time.Now()) > 3*time.Minute {
		t.Errorf("client certificate lives until %v: too long", c.NotAfter)
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"repo:acme/etl:*", "repo:acme/etl:ref:refs/heads/main", true},
		{"repo:acme/etl:*", "repo:acme/etl2:ref:x", false},
		{"repo:acme/*:ref:refs/heads/main", "repo:acme/x/y:ref:refs/heads/main", true},
		{"exact", "exact", true},
		{"exact", "exactly", false},
		{"a?c", "abc", true},
		{"*", "", true},
		{"a*b*c*d", strings.Repeat("a", 1000), false},
	} {
		if got := globMatch(tc.p, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}

// dsaAuthorizedLine returns a real DSA public key in authorized_keys format.
func dsaAuthorizedLine(t testing.TB) string {
	t.Helper()
	var params dsa.Parameters
	if err := dsa.GenerateParameters(&params, rand.Reader, dsa.L1024N160); err != nil {
		t.Fatal(err)
	}
	k := &dsa.PrivateKey{PublicKey: dsa.PublicKey{Parameters: params}}
	if err := dsa.GenerateKey(k, rand.Reader); err != nil {
		t.Fatal(err)
	}
	wire := ssh.Marshal(struct {
		Name       string
		P, Q, G, Y *big.Int
	}{"ssh-dss", k.P, k.Q, k.G, k.Y})
	return "ssh-dss " + base64.StdEncoding.EncodeToString(wire) + " old-key"
}

func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

func BenchmarkSignUser(b *testing.B) {
	a := testAuthority(b, nil)
	key := newEd25519(b)
	id := Identity{User: "alice", Issuer: "https://idp.example.com", Subject: "u1", Groups: []string{"dev", "sre"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := a.SignUser(id, key, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}
