package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bastionhq/bastion/internal/keyuri"
)

// CheckFiles checks the files and directories the config names the way
// `bastion serve` will use them, as the user it runs as: that each exists
// (or, for data_dir, can be created), can be read, and parses, and that
// secrets are not readable by others. Validate checks the config's own
// text; this catches what only fails at start (a missing certificate, a
// CA file that is not PEM), so `config check` can say so before a service
// manager restarts a failing bastion over and over.
//
// Problems that stop the bastion come back as Errors; warnings (a key
// readable by others, a certificate about to expire) as text.
func (c *Config) CheckFiles() (warnings []string, err error) {
	var v validator
	warn := func(field, format string, args ...any) {
		warnings = append(warnings, "config: "+field+": "+fmt.Sprintf(format, args...))
	}
	now := time.Now()

	v.checkDataDir(c.DataDir, warn)
	if t := c.TLS; t != nil && t.CertFile != "" && t.KeyFile != "" {
		certOK := v.readable("tls.cert_file", t.CertFile)
		keyOK := v.readable("tls.key_file", t.KeyFile)
		if certOK && keyOK {
			pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				v.bad("tls", "%s and %s: %v", t.CertFile, t.KeyFile, err)
			} else if leaf := pair.Leaf; leaf != nil {
				switch {
				case now.After(leaf.NotAfter):
					v.bad("tls.cert_file", "%s expired on %s", t.CertFile, leaf.NotAfter.Format(time.DateOnly))
				case leaf.NotAfter.Sub(now) < 14*24*time.Hour:
					warn("tls.cert_file", "%s expires on %s", t.CertFile, leaf.NotAfter.Format(time.DateOnly))
				}
			}
			secretMode(t.KeyFile, "tls.key_file", warn)
		}
	}
	for i, t := range c.Targets {
		f := fmt.Sprintf("targets[%d]", i)
		if t.TLS != nil && t.TLS.CAFile != "" {
			v.pemCerts(f+".tls.ca_file", t.TLS.CAFile)
		}
		if t.PasswordFile != "" && v.readable(f+".password_file", t.PasswordFile) {
			if b, err := os.ReadFile(t.PasswordFile); err == nil && strings.TrimSpace(string(b)) == "" {
				v.bad(f+".password_file", "%s is empty", t.PasswordFile)
			}
			secretMode(t.PasswordFile, f+".password_file", warn)
		}
		if t.PasswordEnv != "" && os.Getenv(t.PasswordEnv) == "" {
			warn(f+".password_env", "the environment variable %s is not set here (it must be where the bastion runs)", t.PasswordEnv)
		}
	}
	for _, k := range []struct{ name, uri string }{{"user", c.CA.User.Key}, {"target", c.CA.Target.Key}, {"host", c.CA.Host.Key}, {"db", c.CA.DB.Key}, {"dbclient", c.CA.DBClient.Key}, {"seal", c.CA.Seal.Key}} {
		u, err := keyuri.Parse(k.uri)
		if k.uri == "" || err != nil {
			continue // Validate reported it
		}
		field := "ca." + k.name + ".key"
		if u.HasPIN() {
			warn(field, "holds its PIN (pin-value): whoever reads the config can use the key; use pin-source=FILE")
		}
		for _, attr := range []string{"pin-source", "management-key-source"} {
			// As serve checks it before it opens the module.
			if p := u.Get(attr); p != "" && v.readable(field, p) {
				if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o077 != 0 {
					v.bad(field, "%s %s: permissions %04o allow access by other users; run chmod 600 %s", attr, p, st.Mode().Perm(), p)
				}
			}
		}
	}
	if w := c.Audit.Webhook; w != nil && w.CAFile != "" {
		v.pemCerts("audit.webhook.ca_file", w.CAFile)
	}
	if len(v.errs) > 0 {
		return warnings, v.errs
	}
	return warnings, nil
}

// readable checks that path is a regular file this process can read.
func (v *validator) readable(field, path string) bool {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.bad(field, "%s does not exist", path)
		return false
	case err != nil:
		v.bad(field, "%v", err)
		return false
	case !st.Mode().IsRegular():
		v.bad(field, "%s is not a regular file", path)
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		v.bad(field, "%s cannot be read by this user: %v", path, errors.Unwrap(err))
		return false
	}
	f.Close()
	return true
}

// pemCerts checks that path holds at least one PEM certificate, and that
// every certificate in it parses.
func (v *validator) pemCerts(field, path string) {
	if !v.readable(field, path) {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		v.bad(field, "%v", err)
		return
	}
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			v.bad(field, "%s: certificate %d does not parse: %v", path, n+1, err)
			return
		}
		n++
	}
	if n == 0 {
		v.bad(field, "%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path)
	}
}

// checkDataDir checks that the data directory is a directory the bastion
// can write, or can be created, and that its CA keys are private.
func (v *validator) checkDataDir(dir string, warn func(field, format string, args ...any)) {
	if dir == "" {
		return
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		parent := filepath.Dir(dir)
		for {
			if _, err := os.Stat(parent); err == nil || parent == filepath.Dir(parent) {
				break
			}
			parent = filepath.Dir(parent)
		}
		if unix.Access(parent, unix.W_OK|unix.X_OK) != nil {
			v.bad("data_dir", "%s does not exist and cannot be created: %s is not writable by this user", dir, parent)
		}
		return
	case err != nil:
		v.bad("data_dir", "%v", err)
		return
	case !st.IsDir():
		v.bad("data_dir", "%s is not a directory", dir)
		return
	}
	if unix.Access(dir, unix.W_OK|unix.X_OK) != nil {
		v.bad("data_dir", "%s is not writable by this user (the bastion writes its store and keys there)", dir)
	}
	if st.Mode().Perm()&0o077 != 0 {
		warn("data_dir", "%s is accessible to others (mode %04o): it holds the CA keys and the recordings; chmod 700 it", dir, st.Mode().Perm())
	}
	keys, _ := os.ReadDir(filepath.Join(dir, "ca"))
	for _, k := range keys {
		p := filepath.Join(dir, "ca", k.Name())
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0 &&
			!strings.HasSuffix(k.Name(), ".pub") && !strings.HasSuffix(k.Name(), ".pem") {
			v.bad("data_dir", "%s is readable by others (mode %04o): the bastion refuses to start; chmod 600 it", p, st.Mode().Perm())
		}
	}
}

// secretMode warns when a file holding a secret is readable by others.
func secretMode(path, field string, warn func(field, format string, args ...any)) {
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o007 != 0 {
		warn(field, "%s is readable by every user (mode %04o): chmod o-rwx it", path, st.Mode().Perm())
	}
}
