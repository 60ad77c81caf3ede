package config

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

var caGood = []struct{ name, yaml string }{
	{"absent", ""},
	{"pkcs11 every key", `ca:
  user:   {key: "pkcs11:token=bastion;object=user-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/bastion/pin"}
  target: {key: "pkcs11:token=bastion;object=target-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/bastion/pin"}
  host:   {key: "pkcs11:token=bastion;object=host-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/bastion/pin"}
  db:     {key: "pkcs11:token=bastion;object=db-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/bastion/pin", cert: /etc/bastion/db_ca.pem}
  seal:   {key: "pkcs11:token=bastion;object=seal?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/bastion/pin", previous: ["bastion-seal+0a1b2c3d+AQID"]}
`},
	{"cloud", `ca: {target: {key: "awskms:key-id=1234abcd-12ab-34cd-56ef-1234567890ab;region=eu-west-1"}, user: {key: "cloudkms:projects/p/locations/global/keyRings/r/cryptoKeys/user/cryptoKeyVersions/1"}, host: {key: "azurekms:vault=bastion;name=host-ca"}}`},
	{"only some", `ca: {user: {key: "softkms:path=/etc/bastion/user_ca.pem"}}`},
}

var caBad = []struct{ name, yaml, want string }{
	{"not a URI", `ca: {user: {key: /etc/bastion/user_ca}}`, "ca.user.key: malformed key URI: no scheme"},
	{"unknown scheme", `ca: {target: {key: "vault:transit/keys/x"}}`, `ca.target.key: malformed key URI: unknown scheme "vault"`},
	{"pin in error", `ca: {host: {key: "pkcs11:token=b?pin-value=s3cr3t-pin"}}`, "ca.host.key: malformed key URI: pkcs11: id or object names the key"},
	{"cert without key", `ca: {db: {cert: /etc/db_ca.pem}}`, "ca.db.cert: only ca.db and ca.dbclient have a certificate"},
	{"cert on user", `ca: {user: {key: "softkms:path=/k", cert: /c.pem}}`, "ca.user.cert"},
	{"previous on user", `ca: {user: {previous: ["bastion-seal+1+2"]}}`, "ca.user.previous: only ca.seal"},
	{"previous not a key", `ca: {seal: {previous: ["ssh-ed25519 AAAA"]}}`, "ca.seal.previous[0]"},
	{"one key for two CAs", `ca: {user: {key: "pkcs11:token=b;object=u?pin-value=s3cr3t-pin"}, host: {key: "pkcs11:token=b;object=u?pin-value=s3cr3t-pin"}}`, "ca.host.key: the same key as ca.user.key"},
	{"one key, attributes reordered", `ca: {target: {key: "pkcs11:object=u;token=b;id=%01"}, user: {key: "pkcs11:token=b;id=%01;object=u"}}`, "ca.target.key: the same key as ca.user.key"},
	{"one seal and db key", `ca: {db: {key: "softkms:path=/k"}, seal: {key: "softkms:path=/k"}}`, "ca.seal.key: the same key as ca.db.key"},
	{"unknown field", `ca: {user: {uri: "pkcs11:token=b;object=u"}}`, "field uri not found"},
	{"unknown purpose", `ca: {client: {key: "pkcs11:token=b;object=u"}}`, "field client not found"},
}

func TestCASection(t *testing.T) {
	for _, tc := range caGood {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(minimal + tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "pkcs11 every key" && (c.CA.DB.Cert != "/etc/bastion/db_ca.pem" || len(c.CA.Seal.Previous) != 1) {
				t.Errorf("parsed %+v", c.CA)
			}
		})
	}
	for _, tc := range caBad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal + tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t-pin") {
				t.Errorf("error %q shows the PIN", err)
			}
		})
	}
}

// FuzzCAKey: any ca key value parses or is refused with a config error
// naming the field, and a PIN in it never reaches the error text.
func FuzzCAKey(f *testing.F) {
	for _, k := range []string{
		"pkcs11:token=bastion;object=user-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/bastion/pin",
		"pkcs11:token=b;object=u?pin-value=s3cr3t-pin", "pkcs11:token=b?pin-value=s3cr3t-pin", "awskms:key-id=k",
		"cloudkms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1", "azurekms:vault=v;name=n",
		"softkms:path=/k", "yubikey:slot-id=9c", "/etc/bastion/user_ca", "vault:x", "",
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		q, err := json.Marshal(key) // a YAML double-quoted scalar
		if err != nil || !utf8.ValidString(key) {
			return
		}
		_, err = Parse([]byte(minimal + "ca: {user: {key: " + string(q) + "}}\n"))
		if err == nil || key == "" || strings.HasPrefix(err.Error(), "config: yaml: ") {
			return // YAML itself refuses control characters before any field is read
		}
		if !strings.Contains(err.Error(), "ca.user.key: ") {
			t.Fatalf("error %q does not name ca.user.key", err)
		}
		_, rest, ok := strings.Cut(key, "pin-value=")
		secret, _, _ := strings.Cut(rest, "&")
		secret, _, _ = strings.Cut(secret, ";")
		if ok && len(secret) >= 8 && !strings.ContainsAny(secret, "%+") && strings.Contains(err.Error(), secret) {
			t.Fatalf("error %q shows the PIN %q", err, secret)
		}
	})
}
