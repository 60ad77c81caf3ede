package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"go.step.sm/crypto/kms"
	"go.step.sm/crypto/kms/apiv1"
	_ "go.step.sm/crypto/kms/awskms"   // awskms: URIs
	_ "go.step.sm/crypto/kms/azurekms" // azurekms: URIs
	_ "go.step.sm/crypto/kms/cloudkms" // cloudkms: URIs
	_ "go.step.sm/crypto/kms/pkcs11"   // pkcs11: URIs (needs cgo; without it, a clear error)
	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/internal/keyuri"
)

// Purpose names one of the CA keys a key URI can hold.
type Purpose string

// The purposes, as the config's ca section and `bastion ca init` name them.
const (
	PurposeUser   Purpose = "user"
	PurposeTarget Purpose = "target"
	PurposeHost   Purpose = "host"
	PurposeDB     Purpose = "db"
	// PurposeDBClient is the database-client CA: the direct PostgreSQL
	// listener's client and server certificates and the SQL API's access
	// tokens. Distinct from PurposeDB, which databases trust.
	PurposeDBClient Purpose = "dbclient"
	PurposeSeal     Purpose = "seal"
)

// Purposes lists every purpose, in the order keys are opened.
var Purposes = []Purpose{PurposeUser, PurposeTarget, PurposeHost, PurposeDB, PurposeDBClient, PurposeSeal}

// String is the name people read: "user CA", "seal key".
func (p Purpose) String() string {
	switch p {
	case PurposeUser:
		return "user CA"
	case PurposeTarget:
		return "target CA"
	case PurposeHost:
		return "host CA"
	case PurposeDB:
		return "database CA"
	case PurposeDBClient:
		return "database client CA"
	case PurposeSeal:
		return "seal key"
	}
	return string(p)
}

// KeyConfig says where each CA key lives. A key with no URI is the file in
// data_dir/ca it has always been (created at first start).
type KeyConfig struct {
	// User, Target, Host, DB and Seal are key URIs (the syntax of package
	// keyuri and go.step.sm/crypto/kms): a key in a PKCS#11 token, a
	// YubiKey, AWS KMS, Google Cloud KMS, Azure Key Vault or a softkms file.
	// "" keeps the key in data_dir/ca.
	User, Target, Host, DB, DBClient, Seal string
	// DBCert is the database CA's certificate (PEM) when DB is a URI: the
	// key signs, the certificate names it. "" means data_dir/ca/db_ca.pem.
	// A missing file is made, self-signed by the key; replicas share one
	// file so PostgreSQL trusts one certificate.
	DBCert string
	// DBClientCert is the same for DBClient ("" means
	// data_dir/ca/dbclient_ca.pem): replicas share it so clients trust one
	// certificate.
	DBClientCert string
	// Timeout bounds opening each KMS (a cloud KMS's first call); default 30s.
	Timeout time.Duration
}

// URI returns the key URI configured for p, "" for a file.
func (kc KeyConfig) URI(p Purpose) string {
	switch p {
	case PurposeUser:
		return kc.User
	case PurposeTarget:
		return kc.Target
	case PurposeHost:
		return kc.Host
	case PurposeDB:
		return kc.DB
	case PurposeDBClient:
		return kc.DBClient
	case PurposeSeal:
		return kc.Seal
	}
	return ""
}

// KeySource says where a key is, for the start-up log and `bastion ca`.
type KeySource struct {
	Purpose   Purpose
	Where     string // a file path, or the key URI with any PIN redacted
	Algorithm string // "ed25519", "ecdsa-p256", …
}

// KeyError is a key that cannot be used: which key, where, and why. Its
// text never holds a PIN.
type KeyError struct {
	Purpose Purpose
	Where   string // the redacted URI, or the file
	Err     error  // already redacted
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("ca: %s key %s: %v", e.Purpose, e.Where, strings.TrimPrefix(e.Err.Error(), "ca: "))
}
func (e *KeyError) Unwrap() error { return e.Err }

// redactedError keeps the chain of a library's error (errors.Is still
// works) while its text has the PIN scrubbed.
type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.err }

func redact(u *keyuri.URI, err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{text: u.Redact(err.Error()), err: err}
}

// kmsSet opens each KMS once: keys that share a module, token and PIN
// (keyuri.URI.Connection) share one client, one login and one session pool.
type kmsSet struct {
	timeout time.Duration
	open    map[string]apiv1.KeyManager
	order   []apiv1.KeyManager
}

func newKMSSet(timeout time.Duration) *kmsSet {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &kmsSet{timeout: timeout, open: map[string]apiv1.KeyManager{}}
}

func (s *kmsSet) Close() error {
	var errs []error
	for i := len(s.order) - 1; i >= 0; i-- {
		errs = append(errs, s.order[i].Close())
	}
	s.order, s.open = nil, map[string]apiv1.KeyManager{}
	return errors.Join(errs...)
}

// manager returns the KeyManager for u, opening it on first use. Before
// handing the URI to the library it checks what the library would only
// report vaguely: a module that is not there, a PIN file that cannot be read.
func (s *kmsSet) manager(u *keyuri.URI) (apiv1.KeyManager, error) {
	if km, ok := s.open[u.Connection()]; ok {
		return km, nil
	}
	typ := apiv1.Type(u.Scheme)
	if _, ok := apiv1.LoadKeyManagerNewFunc(typ); !ok {
		if u.Scheme == "yubikey" {
			return nil, errors.New("this bastion is built without YubiKey support: build with -tags yubikey, or reach the YubiKey through PKCS#11 (ykcs11)")
		}
		return nil, fmt.Errorf("this bastion is built without %s support", u.Scheme)
	}
	if p := u.Get("module-path"); strings.HasPrefix(p, "/") {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("module-path: %w", err)
		}
	}
	for _, attr := range []string{"pin-source", "management-key-source"} {
		if p := u.Get(attr); p != "" {
			if err := checkSecretFile(p); err != nil {
				return nil, fmt.Errorf("%s: %w", attr, err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	km, err := kms.New(ctx, apiv1.Options{Type: typ, URI: u.Raw()})
	if err != nil {
		hint := ""
		switch msg := err.Error(); {
		case strings.Contains(msg, "CKR_PIN_INCORRECT"):
			hint = " (the PIN is wrong)"
		case strings.Contains(msg, "CKR_PIN_LOCKED"):
			hint = " (the PIN is locked: too many wrong tries)"
		case strings.Contains(msg, "could not find PKCS#11 token"):
			hint = " (no token with that label, serial or slot in this module)"
		}
		return nil, fmt.Errorf("open %s: %w%s", u.Scheme, redact(u, err), hint)
	}
	s.open[u.Connection()] = km
	s.order = append(s.order, km)
	return km, nil
}

// checkSecretFile refuses a PIN file that is missing, not a regular file,
// unreadable, or open to other users: whoever reads it can use the key.
func checkSecretFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s: permissions %04o allow access by other users; run chmod 600 %s", path, perm, path)
	}
	if err := checkOwner(path, fi); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// signer opens the key u names and proves it signs: a test signature over
// a fresh nonce must verify with the key's public half.
func (s *kmsSet) signer(u *keyuri.URI, p Purpose) (crypto.Signer, error) {
	km, err := s.manager(u)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "softkms" {
		if err := checkPrivate(u.Get("path"), false); err != nil {
			return nil, err
		}
	}
	sg, err := km.CreateSigner(&apiv1.CreateSignerRequest{SigningKey: u.Raw()})
	if err != nil {
		return nil, fmt.Errorf("open key: %w", redact(u, err))
	}
	if u.Scheme == "pkcs11" {
		// crypto11 takes the first of several matching keys: which one
		// would depend on the token's listing order.
		n, err := countPrivateKeys(u, []byte(u.Get("id")), []byte(u.Get("object")))
		if err != nil {
			return nil, fmt.Errorf("count keys: %w", redact(u, err))
		}
		if n > 1 {
			return nil, fmt.Errorf("the URI matches %d key pairs in the token: name one key by an id and object no other key has (pkcs11-tool --module … -O lists them)", n)
		}
	}
	if err := checkKeyType(p, sg.Public()); err != nil {
		return nil, err
	}
	if err := selfTest(sg); err != nil {
		return nil, redact(u, err)
	}
	return sg, nil
}

// checkKeyType accepts the key types each purpose can use. The type
// follows the key: Ed25519 where the module has it, ECDSA where it does not
// (OpenSSH and PostgreSQL take both).
func checkKeyType(p Purpose, pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return nil
	case *ecdsa.PublicKey:
		switch {
		case k.Curve == elliptic.P256():
			return nil
		case p == PurposeSeal:
			return fmt.Errorf("an ECDSA %s key cannot be the seal key: it must be Ed25519 or ECDSA P-256 (signed-note verifiers know only those)", k.Curve.Params().Name)
		case k.Curve == elliptic.P384() || k.Curve == elliptic.P521():
			return nil
		}
		return fmt.Errorf("unsupported curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return errors.New("RSA keys are not supported: create an ECDSA P-256 (or Ed25519) key, e.g. with bastion ca init")
	}
	return fmt.Errorf("unsupported key type %T", pub)
}

// KeyAlgorithm names a public key's algorithm: "ed25519", "ecdsa-p256".
func KeyAlgorithm(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return "ed25519"
	case *ecdsa.PublicKey:
		return "ecdsa-" + strings.ToLower(strings.ReplaceAll(k.Curve.Params().Name, "-", ""))
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa-%d", k.N.BitLen())
	}
	return fmt.Sprintf("%T", pub)
}

// selfTest signs a fresh nonce and verifies the signature with the public
// key, so a key that is there but cannot sign (wrong PIN, no CKA_SIGN, a
// disabled KMS key, a public key that is not the signing key's) stops the
// start instead of the first login.
func selfTest(s crypto.Signer) error {
	msg := make([]byte, 48)
	copy(msg, "bastion CA self-test\n")
	if _, err := rand.Read(msg[21:]); err != nil {
		return err
	}
	switch k := s.Public().(type) {
	case ed25519.PublicKey:
		sig, err := s.Sign(rand.Reader, msg, crypto.Hash(0))
		if err != nil {
			return fmt.Errorf("test signature: %w", err)
		}
		if !ed25519.Verify(k, msg, sig) {
			return errors.New("test signature does not verify with the key's public half")
		}
	case *ecdsa.PublicKey:
		h, digest := ecdsaDigest(k.Curve, msg)
		sig, err := s.Sign(rand.Reader, digest, h)
		if err != nil {
			return fmt.Errorf("test signature: %w", err)
		}
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("test signature does not verify with the key's public half")
		}
	default:
		return fmt.Errorf("unsupported key type %T", k)
	}
	return nil
}

func ecdsaDigest(c elliptic.Curve, msg []byte) (crypto.Hash, []byte) {
	switch c {
	case elliptic.P384():
		d := sha512.Sum384(msg)
		return crypto.SHA384, d[:]
	case elliptic.P521():
		d := sha512.Sum512(msg)
		return crypto.SHA512, d[:]
	}
	d := sha256.Sum256(msg)
	return crypto.SHA256, d[:]
}

// loadKMSKeys opens every key kc gives a URI, into k. It returns the
// purposes it filled.
func (k *Keys) loadKMSKeys(cadir string, kc KeyConfig) (map[Purpose]bool, error) {
	done := map[Purpose]bool{}
	for _, p := range Purposes {
		raw := kc.URI(p)
		if raw == "" {
			continue
		}
		u, err := keyuri.Parse(raw)
		if err != nil {
			// Parse's errors never quote the URI.
			return nil, &KeyError{Purpose: p, Where: "(key URI)", Err: err}
		}
		sg, err := k.kms.signer(u, p)
		if err != nil {
			return nil, &KeyError{Purpose: p, Where: u.String(), Err: err}
		}
		switch p {
		case PurposeUser, PurposeTarget, PurposeHost:
			ss, err := ssh.NewSignerFromSigner(sg)
			if err != nil {
				return nil, &KeyError{Purpose: p, Where: u.String(), Err: err}
			}
			*map[Purpose]*ssh.Signer{PurposeUser: &k.UserCA, PurposeTarget: &k.TargetCA, PurposeHost: &k.HostCA}[p] = ss
		case PurposeDB, PurposeDBClient:
			certPath, name, dst := kc.DBCert, dbCAName, &k.DBCA
			if certPath == "" {
				certPath = cadir + "/" + dbCACertFile
			}
			if p == PurposeDBClient {
				certPath, name, dst = kc.DBClientCert, dbClientCAName, &k.DBClientCA
				if certPath == "" {
					certPath = cadir + "/" + dbClientCACertFile
				}
			}
			ca, err := loadOrCreateX509CACert(sg, certPath, name)
			if err != nil {
				return nil, &KeyError{Purpose: p, Where: u.String(), Err: err}
			}
			*dst = ca
		case PurposeSeal:
			k.SealKey = sg
		}
		if u.Scheme == "pkcs11" {
			if how, err := privateKeyExposure(u); err != nil {
				k.Warnings = append(k.Warnings, fmt.Sprintf("%s key %s: cannot read its attributes: %v", p, u.String(), redact(u, err)))
			} else if how != "" {
				k.Warnings = append(k.Warnings, fmt.Sprintf("%s key %s: its private half may exist outside the module: %s; make one inside it with bastion ca init --%s --key URI", p, u.String(), how, string(p)))
			}
		}
		k.Sources = append(k.Sources, KeySource{Purpose: p, Where: u.String(), Algorithm: KeyAlgorithm(sg.Public())})
		done[p] = true
	}
	return done, nil
}

// loadOrCreateX509CACert reads an X.509 CA's certificate for a key held
// elsewhere, or self-signs one with it when the file is missing.
func loadOrCreateX509CACert(key crypto.Signer, certPath, name string) (*X509CA, error) {
	b, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		der, err := selfSignX509CA(key, name)
		if err != nil {
			return nil, err
		}
		b = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := createFile(certPath, b, 0o644); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("%s certificate: %w", name, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no CERTIFICATE block", certPath)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", certPath, err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("%s is the certificate of another key (made for the old key? move it away and a new one is made)", certPath)
	}
	return &X509CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(blk)}, nil
}

// Close releases the KMS clients (PKCS#11 sessions, cloud connections)
// the keys hold. File keys need nothing.
func (k *Keys) Close() error {
	if k == nil || k.kms == nil {
		return nil
	}
	return k.kms.Close()
}

// Algorithms for CreateKey.
const (
	AlgEd25519   = "ed25519"
	AlgECDSAP256 = "ecdsa-p256"
)

// DefaultAlgorithm is the algorithm `bastion ca init` creates for p in the
// module a key URI names. Ed25519 for files and a YubiKey; ECDSA P-256
// where the module or its Go binding lacks Ed25519 (PKCS#11 through
// crypto11, Azure Key Vault) or limits it (AWS KMS signs Ed25519 messages
// of at most 4 KiB, and a certificate with many groups is longer; Google
// Cloud KMS has it only in some regions), and for the database CA.
// --alg ed25519 overrides where the module allows it.
func DefaultAlgorithm(scheme string, p Purpose) string {
	if p != PurposeDB && p != PurposeDBClient && (scheme == "softkms" || scheme == "yubikey") {
		return AlgEd25519
	}
	return AlgECDSAP256
}

// CreateKey creates a key for p inside the module uri names (kms
// CreateKey), proves it signs, and returns its public half. alg is
// AlgEd25519, AlgECDSAP256 or "" for DefaultAlgorithm. A softkms key is
// written to its path (PKCS#8 PEM, 0600), never over an existing file.
func CreateKey(uri string, p Purpose, alg string) (crypto.Signer, func() error, error) {
	u, err := keyuri.Parse(uri)
	if err != nil {
		return nil, nil, &KeyError{Purpose: p, Where: "(key URI)", Err: err}
	}
	fail := func(err error) (crypto.Signer, func() error, error) {
		return nil, nil, &KeyError{Purpose: p, Where: u.String(), Err: err}
	}
	if alg == "" {
		alg = DefaultAlgorithm(u.Scheme, p)
	}
	var sa apiv1.SignatureAlgorithm
	switch alg {
	case AlgEd25519:
		if p == PurposeDB || p == PurposeDBClient {
			return fail(fmt.Errorf("the %s is ECDSA P-256", p))
		}
		sa = apiv1.PureEd25519
	case AlgECDSAP256:
		sa = apiv1.ECDSAWithSHA256
	default:
		return fail(fmt.Errorf("unknown algorithm %q (want %s or %s)", alg, AlgEd25519, AlgECDSAP256))
	}
	set := newKMSSet(0)
	km, err := set.manager(u)
	if err != nil {
		return fail(err)
	}
	closeAll := set.Close
	if u.Scheme == "pkcs11" {
		// The library refuses only a key with this id and this object; a
		// key with either would make one of them name two keys.
		for _, attr := range []string{"id", "object"} {
			id, label := []byte(u.Get("id")), []byte(nil)
			if attr == "object" {
				id, label = nil, []byte(u.Get("object"))
			}
			if len(id) == 0 && len(label) == 0 {
				continue
			}
			n, err := countPrivateKeys(u, id, label)
			if err != nil {
				closeAll()
				return fail(fmt.Errorf("count keys: %w", redact(u, err)))
			}
			if n > 0 {
				closeAll()
				return fail(fmt.Errorf("a key with this %s is already in the token: pick an id and an object no key has (pkcs11-tool --module … -O lists them)", attr))
			}
		}
	}
	resp, err := km.CreateKey(&apiv1.CreateKeyRequest{Name: u.Raw(), SignatureAlgorithm: sa})
	if err != nil {
		closeAll()
		return fail(fmt.Errorf("create key: %w", redact(u, err)))
	}
	if u.Scheme == "softkms" {
		if err := writeSoftKey(u.Get("path"), resp.PrivateKey); err != nil {
			closeAll()
			return fail(err)
		}
	}
	sg, err := set.signer(u, p)
	if err != nil {
		closeAll()
		return fail(err)
	}
	return sg, closeAll, nil
}

func writeSoftKey(path string, priv any) error {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	return writePrivate(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// CreateDBCACert self-signs the certificate of the X.509 CA for p
// (PurposeDB or PurposeDBClient) with key and writes it to path (PEM,
// 0644), refusing to replace a file.
func CreateDBCACert(p Purpose, key crypto.Signer, path string) ([]byte, error) {
	name := dbCAName
	if p == PurposeDBClient {
		name = dbClientCAName
	}
	der, err := selfSignX509CA(key, name)
	if err != nil {
		return nil, err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := createFile(path, b, 0o644); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	return b, nil
}

// createFile writes b to a new file at path, refusing to replace one or to
// follow a symbolic link there (a dangling one would have the write land
// wherever it points).
func createFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// SSHLine is an SSH CA's public half as `ca export` prints it: an
// authorized_keys line for the user and target CAs, an @cert-authority
// known_hosts line for hosts ("*" when empty) for the host CA.
func SSHLine(p Purpose, pub crypto.PublicKey, hosts string) (string, error) {
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("ca: %s: %w", p, err)
	}
	switch p {
	case PurposeUser, PurposeTarget:
		return authorizedLine(k, "bastion-"+string(p)+"-ca"), nil
	case PurposeHost:
		if hosts == "" {
			hosts = "*"
		}
		return "@cert-authority " + hosts + " " + authorizedLine(k, "bastion-host-ca"), nil
	}
	return "", fmt.Errorf("ca: %s is not an SSH CA", p)
}
