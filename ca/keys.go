package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"
)

// File names of the key material inside the data directory's "ca" folder.
const (
	userCAFile   = "user_ca"   // OpenSSH private key: signs login certificates
	targetCAFile = "target_ca" // OpenSSH private key: signs per-session target certificates
	hostCAFile   = "host_ca"   // OpenSSH private key: signs host certificates
	dbCAKeyFile  = "db_ca.key" // PKCS#8 PEM: X.509 CA for PostgreSQL
	dbCACertFile = "db_ca.pem" // X.509 CA certificate (public)
	// The database-client CA: the direct PostgreSQL listener's and the SQL
	// API's credentials (never trusted by a database).
	dbClientCAKeyFile  = "dbclient_ca.key" // PKCS#8 PEM
	dbClientCACertFile = "dbclient_ca.pem" // X.509 CA certificate (public)
	hostKeyFile        = "host_key"        // the bastion's own SSH host key
	sealKeyFile        = "seal_key"        // signs recording seals and audit checkpoints
	caDirName          = "ca"
	dbCALifetime       = 10 * 365 * 24 * time.Hour
)

// Keys holds the bastion's key material. Every key has exactly one purpose.
type Keys struct {
	// Warnings name keys that work but are weaker than they look: a
	// PKCS#11 key that was imported or can be exported. Logged at start.
	Warnings []string
	// UserCA signs the certificates people and jobs log in to the bastion with.
	UserCA ssh.Signer
	// TargetCA signs the per-session certificates the bastion presents to
	// targets. Targets trust only this key (TrustedUserCAKeys).
	TargetCA ssh.Signer
	// HostCA signs the bastion's host certificate and the per-target host
	// certificates shown when the bastion intercepts ssh -J.
	HostCA ssh.Signer
	// DBCA is the X.509 CA for PostgreSQL client (and proxy server) certificates.
	DBCA *X509CA
	// DBClientCA is the X.509 CA of the bastion's own database doors: the
	// client certificates `bastion login` hands out for the direct
	// PostgreSQL listener, that listener's server certificate, and the
	// signed access tokens of the SQL API. No database trusts it, so a
	// client certificate is never a credential toward a database.
	DBClientCA *X509CA
	// HostKey is the bastion's own SSH host key (certified by HostCA at start).
	HostKey ssh.Signer
	// SealKey signs recording seals and audit checkpoints: an
	// ed25519.PrivateKey from the file, or a key in a KMS (Ed25519 or ECDSA
	// P-256).
	SealKey crypto.Signer

	// Sources says where each CA key is (file or redacted URI), for the log.
	Sources []KeySource
	// Unused lists key files in data_dir/ca that a key URI replaces: whoever
	// reads them can still sign as the old key, so they should go.
	Unused []string

	kms *kmsSet // the KMS clients the keys hold; nil for files only
}

// X509CA is a certificate authority for X.509 certificates.
type X509CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte // the CA certificate, PEM encoded
}

// LoadOrCreateKeys loads the key material from dir/ca, generating any key that
// does not exist yet. It refuses key files that other users can read or that
// are not regular files, so a misconfigured data directory stops the bastion
// instead of leaking a CA.
func LoadOrCreateKeys(dir string) (*Keys, error) { return LoadKeys(dir, KeyConfig{}) }

// LoadKeys loads the key material: each key kc gives a URI from its KMS
// (first, so a key that cannot sign stops the start before anything is
// written), the rest from files in dir/ca as LoadOrCreateKeys does. Every
// KMS key must make a test signature that verifies with its public half;
// the error is a *KeyError naming the key, where it is and why, with any
// PIN redacted. On error nothing stays open. Close releases the KMS clients.
func LoadKeys(dir string, kc KeyConfig) (_ *Keys, err error) {
	cadir := filepath.Join(dir, caDirName)
	if err := os.MkdirAll(cadir, 0o700); err != nil {
		return nil, fmt.Errorf("ca: create %s: %w", cadir, err)
	}
	if err := checkPrivate(cadir, true); err != nil {
		return nil, err
	}
	k := &Keys{kms: newKMSSet(kc.Timeout)}
	defer func() {
		if err != nil {
			k.Close()
		}
	}()
	fromKMS, err := k.loadKMSKeys(cadir, kc)
	if err != nil {
		return nil, err
	}
	fileKey := func(p Purpose, file string) bool {
		if fromKMS[p] {
			if _, err := os.Lstat(filepath.Join(cadir, file)); err == nil {
				k.Unused = append(k.Unused, filepath.Join(cadir, file))
			}
			return false
		}
		k.Sources = append(k.Sources, KeySource{Purpose: p, Where: filepath.Join(cadir, file)})
		return true
	}
	for _, f := range []struct {
		p       Purpose
		dst     *ssh.Signer
		file    string
		comment string
	}{
		{PurposeUser, &k.UserCA, userCAFile, "bastion user CA"},
		{PurposeTarget, &k.TargetCA, targetCAFile, "bastion target CA"},
		{PurposeHost, &k.HostCA, hostCAFile, "bastion host CA"},
		{"", &k.HostKey, hostKeyFile, "bastion host key"},
	} {
		if f.p != "" && !fileKey(f.p, f.file) {
			continue
		}
		priv, err := loadOrCreateEd25519(filepath.Join(cadir, f.file), f.comment)
		if err != nil {
			return nil, err
		}
		if *f.dst, err = ssh.NewSignerFromKey(priv); err != nil {
			return nil, fmt.Errorf("ca: %s: %w", f.comment, err)
		}
	}
	if fileKey(PurposeSeal, sealKeyFile) {
		if k.SealKey, err = loadOrCreateEd25519(filepath.Join(cadir, sealKeyFile), "bastion seal key"); err != nil {
			return nil, err
		}
	}
	if fileKey(PurposeDB, dbCAKeyFile) {
		if k.DBCA, err = loadOrCreateX509CA(filepath.Join(cadir, dbCAKeyFile), filepath.Join(cadir, dbCACertFile), dbCAName); err != nil {
			return nil, err
		}
	}
	if fileKey(PurposeDBClient, dbClientCAKeyFile) {
		if k.DBClientCA, err = loadOrCreateX509CA(filepath.Join(cadir, dbClientCAKeyFile), filepath.Join(cadir, dbClientCACertFile), dbClientCAName); err != nil {
			return nil, err
		}
	}
	for i := range k.Sources {
		if k.Sources[i].Algorithm == "" {
			k.Sources[i].Algorithm = k.algorithm(k.Sources[i].Purpose)
		}
	}
	if err := k.onePurposeEach(); err != nil {
		return nil, err
	}
	return k, nil
}

// onePurposeEach refuses one key for two purposes (a key URI copied from
// one line of the config to the next). What each CA's signature means is
// kept apart only by its key: a target's sshd trusts the target CA by its
// key alone, so with the user CA's key there every login certificate would
// open the target without the bastion; a database would take the
// database-client CA's certificates as the bastion's own.
func (k *Keys) onePurposeEach() error {
	seen := map[string]Purpose{}
	for _, p := range Purposes {
		var pub crypto.PublicKey
		switch p {
		case PurposeUser, PurposeTarget, PurposeHost:
			s := map[Purpose]ssh.Signer{PurposeUser: k.UserCA, PurposeTarget: k.TargetCA, PurposeHost: k.HostCA}[p]
			if s == nil {
				continue
			}
			if cp, ok := s.PublicKey().(ssh.CryptoPublicKey); ok {
				pub = cp.CryptoPublicKey()
			}
		case PurposeDB, PurposeDBClient:
			if ca := map[Purpose]*X509CA{PurposeDB: k.DBCA, PurposeDBClient: k.DBClientCA}[p]; ca != nil {
				pub = ca.Key.Public()
			}
		case PurposeSeal:
			if k.SealKey != nil {
				pub = k.SealKey.Public()
			}
		}
		if pub == nil {
			continue
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return fmt.Errorf("ca: %s key: %w", p, err)
		}
		if other, dup := seen[string(der)]; dup {
			return fmt.Errorf("ca: the %s key and the %s key are the same key: each purpose needs its own (bastion ca init --%s --key URI makes one)", other, p, string(p))
		}
		seen[string(der)] = p
	}
	// The bastion's own SSH host key is no CA: named as one (softkms reads
	// its OpenSSH file), the key every client sees in the handshake would
	// sign certificates.
	if k.HostKey != nil {
		if cp, ok := k.HostKey.PublicKey().(ssh.CryptoPublicKey); ok {
			if der, err := x509.MarshalPKIXPublicKey(cp.CryptoPublicKey()); err == nil {
				if other, dup := seen[string(der)]; dup {
					return fmt.Errorf("ca: the %s key is the bastion's own SSH host key (%s): each CA needs its own key (bastion ca init --%s --key URI makes one)", other, hostKeyFile, string(other))
				}
			}
		}
	}
	return nil
}

// algorithm names the algorithm of the key for p.
func (k *Keys) algorithm(p Purpose) string {
	var pub crypto.PublicKey
	switch p {
	case PurposeUser, PurposeTarget, PurposeHost:
		s := map[Purpose]ssh.Signer{PurposeUser: k.UserCA, PurposeTarget: k.TargetCA, PurposeHost: k.HostCA}[p]
		if cp, ok := s.PublicKey().(ssh.CryptoPublicKey); ok {
			pub = cp.CryptoPublicKey()
		}
	case PurposeDB:
		pub = k.DBCA.Key.Public()
	case PurposeDBClient:
		pub = k.DBClientCA.Key.Public()
	case PurposeSeal:
		pub = k.SealKey.Public()
	}
	return KeyAlgorithm(pub)
}

// geteuid is os.Geteuid; a test replaces it.
var geteuid = os.Geteuid

// checkPrivate refuses a path that is readable or writable by group or others.
func checkPrivate(path string, dir bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if dir && !fi.IsDir() {
		return fmt.Errorf("ca: %s: not a directory", path)
	}
	if !dir && !fi.Mode().IsRegular() {
		return fmt.Errorf("ca: %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("ca: %s: permissions %04o allow access by other users; run chmod %s %s", path, perm, map[bool]string{true: "700", false: "600"}[dir], path)
	}
	if err := checkOwner(path, fi); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return nil
}

// writePrivate creates path with 0600 permissions, failing if it exists.
func writePrivate(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("ca: create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("ca: sync %s: %w", path, err)
	}
	return f.Close()
}

func readPrivate(path string) ([]byte, error) {
	if err := checkPrivate(path, false); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	return b, nil
}

// loadOrCreateEd25519 reads an OpenSSH-format ed25519 private key, creating
// it with 0600 permissions when it does not exist.
func loadOrCreateEd25519(path, comment string) (ed25519.PrivateKey, error) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("ca: generate %s: %w", comment, err)
		}
		block, err := ssh.MarshalPrivateKey(priv, comment)
		if err != nil {
			return nil, fmt.Errorf("ca: marshal %s: %w", comment, err)
		}
		if err := writePrivate(path, pem.EncodeToMemory(block)); err != nil {
			return nil, err
		}
	}
	b, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	raw, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("ca: parse %s: %w", path, err)
	}
	switch k := raw.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ed25519.PrivateKey:
		return *k, nil
	}
	return nil, fmt.Errorf("ca: %s: want an ed25519 key, got %T", path, raw)
}

// Subject common names of the X.509 CAs.
const (
	dbCAName       = "bastion database CA"
	dbClientCAName = "bastion database client CA"
)

func loadOrCreateX509CA(keyPath, certPath, name string) (*X509CA, error) {
	_, kerr := os.Lstat(keyPath)
	if errors.Is(kerr, fs.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("ca: generate %s: %w", name, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("ca: marshal %s: %w", name, err)
		}
		certDER, err := selfSignX509CA(key, name)
		if err != nil {
			return nil, err
		}
		// The certificate is public, but write it first so a crash between
		// the two writes leaves a key without a cert (regenerated below)
		// rather than a cert whose key is lost.
		os.Remove(certPath)
		if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), 0o644); err != nil {
			return nil, fmt.Errorf("ca: write %s: %w", certPath, err)
		}
		if err := writePrivate(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			return nil, err
		}
	}
	kb, err := readPrivate(keyPath)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(kb)
	if blk == nil {
		return nil, fmt.Errorf("ca: %s: no PEM block", keyPath)
	}
	raw, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca: parse %s: %w", keyPath, err)
	}
	signer, ok := raw.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("ca: %s: key type %T cannot sign", keyPath, raw)
	}
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("ca: %s certificate: %w", name, err)
	}
	cblk, _ := pem.Decode(cb)
	if cblk == nil || cblk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("ca: %s: no CERTIFICATE block", certPath)
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca: parse %s: %w", certPath, err)
	}
	if !publicKeysEqual(cert.PublicKey, signer.Public()) {
		return nil, fmt.Errorf("ca: %s does not match %s", certPath, keyPath)
	}
	return &X509CA{Cert: cert, Key: signer, PEM: pem.EncodeToMemory(cblk)}, nil
}

// selfSignX509CA makes an X.509 CA's self-signed certificate for key.
func selfSignX509CA(key crypto.Signer, name string) ([]byte, error) {
	serial, err := randomSerialBig()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"bastion"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(dbCALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("ca: self-sign %s: %w", name, err)
	}
	return der, nil
}

// own reports whether pub is the public half of one of the bastion's own
// keys: a certificate for it would have the bastion vouch, in a person's
// name, for a key only the bastion holds.
func (k *Keys) own(pub crypto.PublicKey) bool {
	for _, s := range []ssh.Signer{k.UserCA, k.TargetCA, k.HostCA, k.HostKey} {
		if s == nil {
			continue
		}
		if c, ok := s.PublicKey().(ssh.CryptoPublicKey); ok && publicKeysEqual(c.CryptoPublicKey(), pub) {
			return true
		}
	}
	for _, c := range []*X509CA{k.DBCA, k.DBClientCA} {
		if c != nil && c.Key != nil && publicKeysEqual(c.Key.Public(), pub) {
			return true
		}
	}
	return k.SealKey != nil && publicKeysEqual(k.SealKey.Public(), pub)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

func randomSerialBig() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("ca: serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
