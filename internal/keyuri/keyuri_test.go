package keyuri

import (
	"errors"
	"strings"
	"testing"
)

var goodURIs = []struct {
	name, in, shown, conn string
}{
	{"pkcs11 softhsm", "pkcs11:token=bastion;object=user-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/bastion/pin",
		"pkcs11:token=bastion;object=user-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/bastion/pin",
		"pkcs11:module-path=%2Fusr%2Flib%2Fsofthsm%2Flibsofthsm2.so&pin-source=%2Fetc%2Fbastion%2Fpin&token=bastion"},
	{"pkcs11 pin-value redacted", "pkcs11:token=bastion;id=%01%02;object=seal?pin-value=s3cr%2Ft&module-path=libsofthsm2.so",
		"pkcs11:token=bastion;id=%01%02;object=seal?pin-value=REDACTED&module-path=libsofthsm2.so", ""},
	{"pkcs11 pin-value in opaque part", "pkcs11:token=bastion;object=k;pin-value=1234",
		"pkcs11:token=bastion;object=k;pin-value=REDACTED", ""},
	{"pkcs11 slot", "pkcs11:slot-id=0;id=0a?pin-source=/p", "", ""},
	{"pkcs11 upper-case scheme", "PKCS11:serial=1a2b;object=x?pin-source=/p", "", ""},
	{"yubikey", "yubikey:slot-id=9c?pin-source=/etc/bastion/yk-pin", "", ""},
	{"awskms", "awskms:key-id=1234abcd-12ab-34cd-56ef-1234567890ab;region=eu-west-1", "", ""},
	{"cloudkms opaque", "cloudkms:projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1", "", ""},
	{"cloudkms resource", "cloudkms:resource=projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1;credentials-file=/etc/gcp.json", "", ""},
	{"azurekms", "azurekms:vault=bastion-kv;name=user-ca?hsm=true", "", ""},
	{"softkms", "softkms:path=/etc/bastion/user_ca.pem", "", ""},
}

func TestParseGood(t *testing.T) {
	for _, tc := range goodURIs {
		t.Run(tc.name, func(t *testing.T) {
			u, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := tc.shown
			if want == "" {
				want = tc.in
			}
			if got := u.String(); got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
			if tc.conn != "" && u.Connection() != tc.conn {
				t.Errorf("Connection() = %q, want %q", u.Connection(), tc.conn)
			}
			if u.Raw() != tc.in {
				t.Errorf("Raw() = %q, want %q", u.Raw(), tc.in)
			}
		})
	}
}

var badURIs = []struct {
	name, in, want string
}{
	{"empty", "", "empty"},
	{"no scheme", "token=bastion;object=x", "no scheme"},
	{"file path", "/etc/bastion/user_ca", "no scheme"},
	{"unknown scheme", "hsm:token=x", `unknown scheme "hsm"`},
	{"file scheme", "file:///etc/key", "unknown scheme"},
	{"slashes", "pkcs11://token=x;object=y", "not //"},
	{"space", "pkcs11:token=my token;object=x", "whitespace"},
	{"newline", "pkcs11:token=t;object=x\n", "control"},
	{"nul", "pkcs11:token=t;object=x\x00", "control"},
	{"bad utf8", "pkcs11:token=\xff;object=x", "UTF-8"},
	{"too long", "pkcs11:token=t;object=" + strings.Repeat("a", MaxLen), "longer than"},
	{"fragment", "pkcs11:token=t;object=x#frag", "fragment"},
	{"no token", "pkcs11:object=x?pin-source=/p", "exactly one of token"},
	{"token and serial", "pkcs11:token=t;serial=1;object=x", "exactly one of token"},
	{"no key", "pkcs11:token=t?pin-source=/p", "id or object"},
	{"slot not a number", "pkcs11:slot-id=x;object=k", "slot-id must be a number"},
	{"max-sessions 1", "pkcs11:token=t;object=k;max-sessions=1", "max-sessions"},
	{"both pins", "pkcs11:token=t;object=k?pin-value=1&pin-source=/p", "mutually exclusive"},
	{"relative pin-source", "pkcs11:token=t;object=k?pin-source=pin.txt", "pin-source must be an absolute path"},
	{"pin-source with ?", "pkcs11:token=t;object=k?pin-source=/etc/pin%3Fx", "pin-source must be a plain path"},
	{"pin-source with //", "pkcs11:token=t;object=k?pin-source=//etc/pin", "pin-source must be a plain path"},
	{"pin-source with %", "pkcs11:token=t;object=k?pin-source=/etc/p%2541", "pin-source must be a plain path"},
	{"relative module", "pkcs11:token=t;object=k?module-path=lib/x.so", "module-path must be an absolute path"},
	{"typo attribute", "pkcs11:token=t;objet=k", `unknown attribute "objet"`},
	{"duplicate attribute", "pkcs11:token=t;object=k;object=j", "appears twice"},
	{"no value", "pkcs11:token=t;object", "has no value"},
	{"bad escape", "pkcs11:token=t;object=%zz", "bad percent-encoding"},
	{"bad escape in pin is not shown", "pkcs11:token=t;object=k;pin-value=%zzsecret", "pin-value: bad percent-encoding"},
	{"public type", "pkcs11:token=t;object=k;type=public", `type must be "private"`},
	{"bad attribute name", "pkcs11:token=t;OBJ%00=k", "attribute name"},
	{"yubikey no slot", "yubikey:pin-source=/p", "slot-id names the key"},
	{"yubikey bad slot", "yubikey:slot-id=zz", "PIV slot"},
	{"awskms no key", "awskms:region=eu-west-1", "key-id"},
	{"cloudkms short", "cloudkms:projects/p/locations/l/keyRings/r/cryptoKeys/k", "resource name"},
	{"cloudkms empty part", "cloudkms:projects//locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1", "resource name"},
	{"azurekms no vault", "azurekms:name=k", "vault and name"},
	{"azurekms secret", "azurekms:vault=v;name=k;client-secret=hunter2", "client-secret does not belong"},
	{"softkms no path", "softkms:", "path names the key file"},
	{"softkms relative", "softkms:path=user_ca.pem", "absolute path"},
}

func TestParseBad(t *testing.T) {
	for _, tc := range badURIs {
		t.Run(tc.name, func(t *testing.T) {
			u, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse accepted it: %q", u)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("error %v does not wrap ErrSyntax", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to mention %q", err, tc.want)
			}
			for _, secret := range []string{"zzsecret", "hunter2"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a secret", err)
				}
			}
		})
	}
}

func TestRedact(t *testing.T) {
	u, err := Parse("pkcs11:token=bastion;object=user-ca?pin-value=p%40ss%20word&module-path=/lib/x.so")
	if err != nil {
		t.Fatal(err)
	}
	msg := "key with uri " + u.Raw() + " not found; login with p@ss word failed (p%40ss+word, p%40ss%20word)"
	got := u.Redact(msg)
	for _, secret := range []string{"p@ss word", "p%40ss", "ss word"} {
		if strings.Contains(got, secret) {
			t.Errorf("Redact left %q in %q", secret, got)
		}
	}
	if !strings.Contains(got, "pkcs11:token=bastion;object=user-ca?pin-value=REDACTED&module-path=/lib/x.so") {
		t.Errorf("Redact(%q) = %q: the URI is not recognisable", msg, got)
	}
	if !u.HasPIN() {
		t.Error("HasPIN() = false")
	}
	// Without a PIN, text is untouched.
	plain, _ := Parse("pkcs11:token=bastion;object=user-ca?pin-source=/etc/pin")
	if got := plain.Redact("x " + plain.Raw()); got != "x "+plain.Raw() {
		t.Errorf("Redact changed text without secrets: %q", got)
	}
}

func TestConnectionShared(t *testing.T) {
	a, _ := Parse("pkcs11:token=bastion;object=user-ca?module-path=/lib/x.so&pin-source=/p")
	b, _ := Parse("pkcs11:token=bastion;id=02;object=target-ca?module-path=/lib/x.so&pin-source=/p")
	c, _ := Parse("pkcs11:token=other;object=user-ca?module-path=/lib/x.so&pin-source=/p")
	if a.Connection() != b.Connection() {
		t.Errorf("keys in one token: %q != %q", a.Connection(), b.Connection())
	}
	if a.Connection() == c.Connection() {
		t.Errorf("keys in two tokens share %q", a.Connection())
	}
}

// FuzzParse: no input panics, errors never echo a PIN, and what parses
// shows no PIN and parses again to the same thing.
func FuzzParse(f *testing.F) {
	for _, tc := range goodURIs {
		f.Add(tc.in)
	}
	for _, tc := range badURIs {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			return
		}
		if v := u.Get("pin-value"); len(v) >= 4 && strings.Contains(u.String(), "pin-value="+v) {
			t.Fatalf("String() %q shows the PIN", u.String())
		}
		if v := u.Get("pin-value"); len(v) >= 4 && strings.Contains(u.Redact("login "+v+" failed"), v) {
			t.Fatalf("Redact left the PIN %q", v)
		}
		again, err := Parse(u.Raw())
		if err != nil || again.String() != u.String() || again.Connection() != u.Connection() {
			t.Fatalf("Parse(Raw()) = %v, %v; want %q", again, err, u.String())
		}
	})
}
