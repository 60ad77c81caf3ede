package ca

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/internal/localsvc"
	"github.com/bastionhq/bastion/internal/testenv"
)

// hsmKeyConfig creates every CA key inside h's token (as `bastion ca
// init` does) and returns the config naming them.
func hsmKeyConfig(t testing.TB, h *localsvc.SoftHSM) KeyConfig {
	t.Helper()
	var kc KeyConfig
	for i, p := range Purposes {
		uri := h.KeyURI(string(p)+"-ca", byte(i+1))
		sg, closeKMS, err := CreateKey(uri, p, "")
		if err != nil {
			t.Fatalf("CreateKey %s: %v", p, err)
		}
		if _, ok := sg.Public().(*ecdsa.PublicKey); !ok {
			t.Errorf("%s: a PKCS#11 key is %T, want ECDSA P-256 (crypto11 has no Ed25519)", p, sg.Public())
		}
		closeKMS()
		switch p {
		case PurposeUser:
			kc.User = uri
		case PurposeTarget:
			kc.Target = uri
		case PurposeHost:
			kc.Host = uri
		case PurposeDB:
			kc.DB = uri
		case PurposeDBClient:
			kc.DBClient = uri
		case PurposeSeal:
			kc.Seal = uri
		}
	}
	return kc
}

// Every CA key in a SoftHSM token: the authority signs with them, the
// certificates verify against the exported public parts, and data_dir/ca
// holds no CA private key (only the bastion's own host key and the
// database CA's public certificate).
func TestKeysInSoftHSM(t *testing.T) {
	h := testenv.SoftHSM(t)
	kc := hsmKeyConfig(t, h)
	dir := t.TempDir()
	keys, err := LoadKeys(dir, kc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	for _, s := range keys.Sources {
		if !strings.HasPrefix(s.Where, "pkcs11:") || s.Algorithm != "ecdsa-p256" {
			t.Errorf("source %+v, want a pkcs11 ECDSA P-256 key", s)
		}
	}
	if len(keys.Sources) != len(Purposes) {
		t.Errorf("got %d sources, want %d", len(keys.Sources), len(Purposes))
	}
	entries, _ := os.ReadDir(filepath.Join(dir, caDirName))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != dbCACertFile+" "+dbClientCACertFile+" "+hostKeyFile {
		t.Errorf("data_dir/ca holds %v, want only %s, %s and %s", names, dbCACertFile, dbClientCACertFile, hostKeyFile)
	}

	a, err := New(Config{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	pub := newEd25519(t)
	cert, _, err := a.SignUser(Identity{User: "alice", Issuer: "https://idp", Subject: "a"}, pub, 0)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Signature.Format != ssh.KeyAlgoECDSA256 {
		t.Errorf("user certificate signed with %s, want %s", cert.Signature.Format, ssh.KeyAlgoECDSA256)
	}
	checker := ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool { return string(k.Marshal()) == string(keys.UserCA.PublicKey().Marshal()) }}
	if err := checker.CheckCert("alice", cert); err != nil {
		t.Errorf("user certificate: %v", err)
	}
	tc, err := a.SignTarget(pub, TargetCert{Login: "root", KeyID: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(keys.TargetCALine(), "ecdsa-sha2-nistp256 ") {
		t.Errorf("target CA line %q", keys.TargetCALine())
	}
	checker.IsUserAuthority = func(k ssh.PublicKey) bool { return string(k.Marshal()) == string(keys.TargetCA.PublicKey().Marshal()) }
	if err := checker.CheckCert("root", tc); err != nil {
		t.Errorf("target certificate: %v", err)
	}
	hc, err := a.SignHost(keys.HostKey.PublicKey(), "h", []string{"web1"}, time.Hour)
	if err != nil || hc.SignatureKey.Type() != ssh.KeyAlgoECDSA256 {
		t.Fatalf("host certificate: %v", err)
	}
	ck, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dbc, err := a.SignDBClient(ck.Public(), "app", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(keys.DBCA.PEM)
	if _, err := dbc.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("database client certificate: %v", err)
	}
	srv, err := a.SignDBServer(ck.Public(), []string{"127.0.0.1"}, time.Minute)
	if err != nil || !srv.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("database server certificate: %v", err)
	}
	if _, ok := keys.SealKey.Public().(*ecdsa.PublicKey); !ok {
		t.Errorf("seal key %T", keys.SealKey.Public())
	}
	if err := keys.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	// A second start finds the same keys and the certificate made for the
	// database CA key at the first.
	again, err := LoadKeys(dir, kc)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.UserCALine() != keys.UserCALine() || string(again.DBCA.PEM) != string(keys.DBCA.PEM) {
		t.Error("the second start has other keys")
	}
}

// A key that cannot be used stops LoadKeys with an error naming the key
// and the reason, and never the PIN.
func TestKeyErrors(t *testing.T) {
	h := testenv.SoftHSM(t)
	good := h.KeyURI("user-ca", 1)
	if _, closeKMS, err := CreateKey(good, PurposeUser, ""); err != nil {
		t.Fatal(err)
	} else {
		closeKMS()
	}
	wrongPIN := filepath.Join(t.TempDir(), "wrong-pin")
	os.WriteFile(wrongPIN, []byte("31337-wrong\n"), 0o600)
	openPIN := filepath.Join(t.TempDir(), "open-pin")
	os.WriteFile(openPIN, []byte(h.PIN), 0o644)
	// A 0600 decoy beside it: the bastion must check the file it reads.
	os.WriteFile(openPIN+"?x", []byte("decoy\n"), 0o600)
	tests := []struct {
		name, uri string
		want      []string
	}{
		{"wrong PIN", strings.Replace(good, h.PINFile, wrongPIN, 1), []string{"user CA key pkcs11:token=bastion;id=%01;object=user-ca", "CKR_PIN_INCORRECT", "the PIN is wrong"}},
		{"wrong pin-value", "pkcs11:token=bastion;object=user-ca?module-path=" + h.Module + "&pin-value=98765-wrong", []string{"pin-value=REDACTED", "CKR_PIN_INCORRECT"}},
		{"missing object", strings.Replace(good, "object=user-ca", "object=no-such-key", 1), []string{"object=no-such-key", "not found"}},
		{"missing object with pin-value", "pkcs11:token=bastion;object=nope?module-path=" + h.Module + "&pin-value=" + h.PIN, []string{"pin-value=REDACTED", "not found"}},
		{"no such module", strings.Replace(good, h.Module, "/nonexistent/libsofthsm2.so", 1), []string{"module-path", "no such file"}},
		{"no such token", strings.Replace(good, "token=bastion", "token=other", 1), []string{"token=other"}},
		{"no PIN file", strings.Replace(good, h.PINFile, "/nonexistent/pin", 1), []string{"pin-source", "no such file"}},
		{"PIN file others can read", strings.Replace(good, h.PINFile, openPIN, 1), []string{"pin-source", "allow access by other users"}},
		{"pin-source read elsewhere", strings.Replace(good, h.PINFile, openPIN+"%3Fx", 1), []string{"user CA key (key URI)", "pin-source"}},
		{"malformed", "pkcs11:token=bastion?pin-value=hunter2-secret", []string{"user CA key (key URI)", "id or object"}},
		{"softkms missing file", "softkms:path=/nonexistent/user_ca.pem", []string{"no such file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			keys, err := LoadKeys(dir, KeyConfig{User: tc.uri})
			if err == nil {
				keys.Close()
				t.Fatal("LoadKeys accepted it")
			}
			var ke *KeyError
			if !errors.As(err, &ke) || ke.Purpose != PurposeUser {
				t.Errorf("error %T %v: want a *KeyError for the user CA", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q: want it to mention %q", err, w)
				}
			}
			for _, secret := range []string{h.PIN, "98765-wrong", "31337-wrong", "hunter2-secret"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a PIN", err)
				}
			}
			// Nothing half-made: no key file was created for any purpose.
			if entries, _ := os.ReadDir(filepath.Join(dir, caDirName)); len(entries) != 0 {
				t.Errorf("data_dir/ca has %d entries after a failed start", len(entries))
			}
		})
	}
}

// softkms keys are files named by URI: Ed25519 by default, refused when
// others can read them, and never overwritten by CreateKey.
func TestSoftKMSKeys(t *testing.T) {
	dir := t.TempDir()
	var kc KeyConfig
	for _, p := range Purposes {
		uri := "softkms:path=" + filepath.Join(dir, string(p)+".pem")
		sg, closeKMS, err := CreateKey(uri, p, "")
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		closeKMS()
		_, isEd := sg.Public().(ed25519.PublicKey)
		if want := p != PurposeDB && p != PurposeDBClient; isEd != want {
			t.Errorf("%s: key %T", p, sg.Public())
		}
		switch p {
		case PurposeUser:
			kc.User = uri
		case PurposeTarget:
			kc.Target = uri
		case PurposeHost:
			kc.Host = uri
		case PurposeDB:
			kc.DB = uri
		case PurposeDBClient:
			kc.DBClient = uri
		case PurposeSeal:
			kc.Seal = uri
		}
	}
	if _, _, err := CreateKey(kc.User, PurposeUser, ""); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("CreateKey over an existing file: %v", err)
	}
	if _, _, err := CreateKey("softkms:path="+filepath.Join(dir, "x.pem"), PurposeDB, AlgEd25519); err == nil {
		t.Error("an Ed25519 database CA was created")
	}
	keys, err := LoadKeys(t.TempDir(), kc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(keys.UserCALine(), "ssh-ed25519 ") {
		t.Errorf("user CA line %q", keys.UserCALine())
	}
	os.Chmod(filepath.Join(dir, "seal.pem"), 0o644)
	if _, err := LoadKeys(t.TempDir(), kc); err == nil || !strings.Contains(err.Error(), "seal key") {
		t.Errorf("a seal key others can read: %v", err)
	}
}

// Switching a purpose to a key URI leaves the old file unused, and says so.
func TestUnusedKeyFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreateKeys(dir); err != nil {
		t.Fatal(err)
	}
	uri := "softkms:path=" + filepath.Join(t.TempDir(), "user.pem")
	if _, c, err := CreateKey(uri, PurposeUser, ""); err != nil {
		t.Fatal(err)
	} else {
		c()
	}
	keys, err := LoadKeys(dir, KeyConfig{User: uri})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.Unused) != 1 || filepath.Base(keys.Unused[0]) != userCAFile {
		t.Errorf("Unused = %v, want the old user_ca file", keys.Unused)
	}
}

// BenchmarkSignTarget measures per-session target certificates, the
// signature every session needs, with the target CA in a file and in
// SoftHSM: go test -bench SignTarget -run ^$ ./ca
func BenchmarkSignTarget(b *testing.B) {
	pub := newEd25519(b)
	run := func(b *testing.B, keys *Keys) {
		a, err := New(Config{Keys: keys})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := a.SignTarget(pub, TargetCert{Login: "root", KeyID: "bench"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("file", func(b *testing.B) { run(b, testKeys(b)) })
	b.Run("softhsm", func(b *testing.B) {
		h := testenv.SoftHSM(b)
		uri := h.KeyURI("target-ca", 2)
		if _, c, err := CreateKey(uri, PurposeTarget, ""); err != nil {
			b.Fatal(err)
		} else {
			c()
		}
		keys, err := LoadKeys(b.TempDir(), KeyConfig{Target: uri})
		if err != nil {
			b.Fatal(err)
		}
		defer keys.Close()
		run(b, keys)
	})
}

// TestKeysOnePurposeEach: one key named for two purposes (a key URI copied
// from one line of ca to the next) is refused. The purposes' trust is kept
// apart only by their keys: a target's sshd trusts the target CA by its key
// alone, so with the user CA's key there it would take every login
// certificate as one of the bastion's per-session certificates, and the
// login would reach the target without the bastion.
func TestKeysOnePurposeEach(t *testing.T) {
	dir := t.TempDir()
	ed := "softkms:path=" + filepath.Join(dir, "ed.pem")
	ec := "softkms:path=" + filepath.Join(dir, "ec.pem")
	for uri, p := range map[string]Purpose{ed: PurposeUser, ec: PurposeDB} {
		_, c, err := CreateKey(uri, p, "")
		if err != nil {
			t.Fatal(err)
		}
		c()
	}
	for name, kc := range map[string]KeyConfig{
		"user and target": {User: ed, Target: ed},
		"host and seal":   {Host: ed, Seal: ed},
		"db and dbclient": {DB: ec, DBClient: ec},
	} {
		keys, err := LoadKeys(t.TempDir(), kc)
		if err == nil {
			keys.Close()
			t.Errorf("%s share a key, and the keys loaded", name)
		} else if !strings.Contains(err.Error(), "same key") {
			t.Errorf("%s: %v", name, err)
		}
	}
	keys, err := LoadKeys(t.TempDir(), KeyConfig{User: ed, DB: ec})
	if err != nil {
		t.Fatalf("one key each: %v", err)
	}
	keys.Close()
	// The bastion's own SSH host key named as a CA (softkms reads the
	// OpenSSH file): the key every client sees in the handshake would sign
	// certificates.
	if keys, err := LoadKeys(dir, KeyConfig{}); err != nil {
		t.Fatal(err)
	} else {
		keys.Close()
	}
	hostKey := "softkms:path=" + filepath.Join(dir, caDirName, hostKeyFile)
	for _, kc := range []KeyConfig{{User: hostKey}, {Host: hostKey}} {
		if keys, err := LoadKeys(dir, kc); err == nil {
			keys.Close()
			t.Errorf("the host key as a CA (%+v) loaded", kc)
		} else if !strings.Contains(err.Error(), "own SSH host key") {
			t.Errorf("the host key as a CA: %v", err)
		}
	}
}

// A key URI must name one key pair. crypto11 takes the first of several
// matches, so a label made twice (ca init run again with another id, or a
// second key an operator imported under the same label) would have the
// bastion sign with whichever the token lists first, and `ca init` must not
// make that second key.
func TestPKCS11KeyURINamesOneKey(t *testing.T) {
	h := testenv.SoftHSM(t)
	if _, closeKMS, err := CreateKey(h.KeyURI("user-ca", 1), PurposeUser, ""); err != nil {
		t.Fatal(err)
	} else {
		closeKMS()
	}
	// ca init with the label taken (another id) or the id taken (another label).
	for _, uri := range []string{h.KeyURI("user-ca", 2), h.KeyURI("other-ca", 1)} {
		if _, closeKMS, err := CreateKey(uri, PurposeTarget, ""); err == nil {
			closeKMS()
			t.Errorf("CreateKey %s made a second key beside user-ca (id 01)", uri)
		} else if !strings.Contains(err.Error(), "already") {
			t.Errorf("CreateKey %s: %v, want it to say a key is already there", uri, err)
		}
	}
	// A second key pair under the label, imported outside the bastion.
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "k.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	imp := exec.Command("softhsm2-util", "--import", keyFile, "--token", h.Label, "--label", "user-ca", "--id", "09", "--pin", h.PIN)
	imp.Env = append(os.Environ(), h.Env())
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --import: %v\n%s", err, out)
	}
	byLabel := "pkcs11:token=bastion;object=user-ca?module-path=" + h.Module + "&pin-source=" + h.PINFile
	keys, err := LoadKeys(t.TempDir(), KeyConfig{User: byLabel})
	if err == nil {
		keys.Close()
		t.Fatal("LoadKeys took a key URI that matches two key pairs")
	}
	if !strings.Contains(err.Error(), "2 key pairs") {
		t.Errorf("error %q: want it to say the URI matches 2 key pairs", err)
	}
	// Naming it by id too picks one: fine. The key ca init made is
	// sensitive and never extractable: no warning.
	keys, err = LoadKeys(t.TempDir(), KeyConfig{User: h.KeyURI("user-ca", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.Warnings) != 0 {
		t.Errorf("warnings for the key ca init made: %q", keys.Warnings)
	}
	keys.Close()
	// The imported one was a file first (its private half has been outside
	// the token): it loads, with a warning that says so.
	keys, err = LoadKeys(t.TempDir(), KeyConfig{User: h.KeyURI("user-ca", 9)})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.Warnings) != 1 || !strings.Contains(keys.Warnings[0], "user CA key") || !strings.Contains(keys.Warnings[0], "outside the module") {
		t.Errorf("warnings for an imported key: %q", keys.Warnings)
	}
	keys.Close()
}

// A PIN file or a CA key file owned by another (non-root) user passes a
// mode check (0600) while that user reads and rewrites it: the bastion
// refuses it as sshd's StrictModes does. As root the test hands the files
// to uid 4242; otherwise it runs the check as if it were another uid.
func TestSecretFilesOwnedByAnotherUser(t *testing.T) {
	h := testenv.SoftHSM(t)
	uri := h.KeyURI("user-ca", 1)
	if _, closeKMS, err := CreateKey(uri, PurposeUser, ""); err != nil {
		t.Fatal(err)
	} else {
		closeKMS()
	}
	dir := t.TempDir()
	if keys, err := LoadKeys(dir, KeyConfig{}); err != nil {
		t.Fatal(err)
	} else {
		keys.Close()
	}
	handOver := func(t *testing.T, path string) {
		if os.Geteuid() == 0 {
			if err := os.Chown(path, 4242, -1); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chown(path, 0, -1) })
			return
		}
		real := geteuid
		geteuid = func() int { return os.Getuid() + 1 }
		t.Cleanup(func() { geteuid = real })
	}
	tests := []struct {
		name, file string
		kc         KeyConfig
	}{
		{"PIN file", h.PINFile, KeyConfig{User: uri}},
		{"CA key file", filepath.Join(dir, caDirName, userCAFile), KeyConfig{}},
		{"CA directory", filepath.Join(dir, caDirName), KeyConfig{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			handOver(t, tc.file)
			keys, err := LoadKeys(dir, tc.kc)
			if err == nil {
				keys.Close()
				t.Fatalf("%s owned by another user: loaded", tc.file)
			}
			if !strings.Contains(err.Error(), "owned by uid") || !strings.Contains(err.Error(), tc.file) {
				t.Errorf("error %q: want it to name %s and its owner", err, tc.file)
			}
		})
	}
}

// TestX509CACertNotThroughSymlink: a missing CA certificate is written as
// a new file, never through a dangling symbolic link in its place.
func TestX509CACertNotThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(dir, "elsewhere.pem")
	link := filepath.Join(dir, "db_ca.crt")
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateX509CACert(key, link, dbCAName); err == nil {
		t.Fatal("a certificate was written through a dangling symlink")
	}
	if _, err := os.Lstat(elsewhere); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the symlink's target was created: %v", err)
	}
	plain := filepath.Join(dir, "plain.crt")
	if _, err := loadOrCreateX509CACert(key, plain, dbCAName); err != nil {
		t.Fatalf("a missing certificate in a plain place: %v", err)
	}
	if _, err := loadOrCreateX509CACert(key, plain, dbCAName); err != nil {
		t.Fatalf("read again: %v", err)
	}
}
