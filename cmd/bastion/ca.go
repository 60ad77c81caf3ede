package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/keyuri"
	"github.com/bastionhq/bastion/recorder"
)

func runCA(args []string) error {
	usage := "Usage: bastion ca " + caArgs + "\n\n" +
		"export prints a CA's public part (on the bastion host); init creates a CA key in an HSM or KMS;\n" +
		"revoke revokes a certificate, or everything a user holds (through the bastion).\n" +
		"Run `bastion ca export --help`, `bastion ca init --help` or `bastion ca revoke --help` for their flags.\n"
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 0 {
			fmt.Print(usage)
			return nil
		}
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "export":
		return runCAExport(args[1:])
	case "init":
		return runCAInit(args[1:])
	case "revoke":
		return thinAs("ca revoke", "revoke")(args[1:])
	}
	return fmt.Errorf("unknown ca command %q (export, init, revoke)", args[0])
}

// purposeFlags adds --user, --target, --host, --db, --dbclient and --seal and returns
// a function that says which one was given (exactly one, or "").
func purposeFlags(fs interface {
	Bool(name string, value bool, usage string) *bool
}) func() ca.Purpose {
	set := map[ca.Purpose]*bool{
		ca.PurposeUser:     fs.Bool("user", false, "user CA"),
		ca.PurposeTarget:   fs.Bool("target", false, "target CA"),
		ca.PurposeHost:     fs.Bool("host", false, "host CA"),
		ca.PurposeDB:       fs.Bool("db", false, "database (X.509) CA: databases trust it"),
		ca.PurposeDBClient: fs.Bool("dbclient", false, "database client (X.509) CA: the direct PostgreSQL listener's and SQL API's credentials"),
		ca.PurposeSeal:     fs.Bool("seal", false, "seal key (recordings and audit checkpoints)"),
	}
	return func() ca.Purpose {
		var got ca.Purpose
		for _, p := range ca.Purposes {
			if *set[p] {
				if got != "" {
					return ""
				}
				got = p
			}
		}
		return got
	}
}

func runCAExport(args []string) error {
	fs := flags("ca export", "--user|--target|--host|--db|--dbclient|--seal [--config FILE | --data-dir DIR]",
		"Print a CA's public part in the format its consumer reads:\n"+
			"  --target  TrustedUserCAKeys line for targets' sshd (targets trust only this CA)\n"+
			"  --user    the user CA as an authorized_keys/TrustedUserCAKeys line\n"+
			"  --host    @cert-authority line for clients' known_hosts\n"+
			"  --db      PEM certificate for PostgreSQL's ssl_ca_file\n"+
			"  --dbclient PEM certificate clients of the direct PostgreSQL listener verify it with (sslrootcert)\n"+
			"  --seal    the seal key as a signed-note verifier key, for auditors (and ca.seal.previous)\n"+
			"Run it on the bastion host; file keys are created on first use. With --config,\n"+
			"keys the ca section puts in an HSM or KMS are read from there.")
	purpose := purposeFlags(fs)
	hosts := fs.String("hosts", "*", "host patterns for the --host line")
	cfgPath := fs.String("config", "", "config file (for data_dir and the ca section)")
	dataDir := fs.String("data-dir", "", "data directory (instead of --config)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	p := purpose()
	if p == "" || (*cfgPath == "") == (*dataDir == "") {
		return fs.usageErr()
	}
	dir, kc := *dataDir, ca.KeyConfig{}
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		dir, kc = cfg.DataDir, app.KeyConfig(cfg)
	}
	keys, err := ca.LoadKeys(dir, kc)
	if err != nil {
		return err
	}
	defer keys.Close()
	switch p {
	case ca.PurposeUser:
		fmt.Println(keys.UserCALine())
	case ca.PurposeTarget:
		fmt.Println(keys.TargetCALine())
	case ca.PurposeHost:
		fmt.Println(keys.HostCALine(*hosts))
	case ca.PurposeDB:
		os.Stdout.Write(keys.DBCA.PEM)
	case ca.PurposeDBClient:
		os.Stdout.Write(keys.DBClientCA.PEM)
	case ca.PurposeSeal:
		fmt.Println(recorder.NoteVerifierKey(keys.SealKey.Public()))
	}
	return nil
}

func runCAInit(args []string) error {
	fs := flags("ca init", "--user|--target|--host|--db|--dbclient|--seal --key URI [--alg ed25519|ecdsa-p256] [--cert FILE | --config FILE]",
		"Create a CA key inside a PKCS#11 token, a YubiKey or a cloud KMS (or a softkms file), prove\n"+
			"it signs, and print its public part as `ca export` does. The private key never leaves the\n"+
			"module. Then name the key in the config's ca section (the command prints the lines).\n"+
			"The algorithm is Ed25519 where the module has it and ECDSA P-256 where it does not\n"+
			"(PKCS#11, Azure Key Vault); the database CAs are ECDSA P-256. A PKCS#11 URI needs both id and object.\n"+
			"For --db and --dbclient, the CA's certificate is self-signed by the key and written to --cert, or to\n"+
			"the config's ca.db.cert (ca.dbclient.cert) or data_dir/ca/db_ca.pem (dbclient_ca.pem) with --config.")
	purpose := purposeFlags(fs)
	key := fs.String("key", "", "key URI, e.g. pkcs11:token=bastion;id=%01;object=user-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/bastion/pin")
	alg := fs.String("alg", "", "ed25519 or ecdsa-p256 (default: what the module supports)")
	certPath := fs.String("cert", "", "--db, --dbclient: where to write the CA certificate")
	cfgPath := fs.String("config", "", "--db, --dbclient: config file, for ca.db.cert (ca.dbclient.cert) or data_dir")
	hosts := fs.String("hosts", "*", "host patterns for the --host line")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	p := purpose()
	if p == "" || *key == "" {
		return fs.usageErr()
	}
	x509CA := p == ca.PurposeDB || p == ca.PurposeDBClient
	if x509CA && *certPath == "" {
		if *cfgPath == "" {
			return fmt.Errorf("ca init --%s needs --cert FILE or --config FILE: where the CA certificate goes", p)
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		file, configured := "db_ca.pem", cfg.CA.DB.Cert
		if p == ca.PurposeDBClient {
			file, configured = "dbclient_ca.pem", cfg.CA.DBClient.Cert
		}
		if *certPath = configured; *certPath == "" {
			*certPath = filepath.Join(cfg.DataDir, "ca", file)
			if err := os.MkdirAll(filepath.Dir(*certPath), 0o700); err != nil {
				return err
			}
		}
	}
	if x509CA {
		// Checked before the key is made: a key made for a certificate that
		// cannot be written stays in the token, unnamed, with its id taken.
		if _, err := os.Lstat(*certPath); err == nil {
			return fmt.Errorf("ca init --%s: %s is already there (the certificate of another key?): move it away or name another --cert; no key was made", p, *certPath)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("ca init --%s: %w", p, err)
		}
	}
	signer, closeKMS, err := ca.CreateKey(*key, p, *alg)
	if err != nil {
		return err
	}
	defer closeKMS()
	u, _ := keyuri.Parse(*key) // CreateKey parsed it
	pub := signer.Public()
	switch p {
	case ca.PurposeDB, ca.PurposeDBClient:
		pem, err := ca.CreateDBCACert(p, signer, *certPath)
		if err != nil {
			return err
		}
		os.Stdout.Write(pem)
	case ca.PurposeSeal:
		fmt.Println(recorder.NoteVerifierKey(pub))
	default:
		line, err := ca.SSHLine(p, pub, *hosts)
		if err != nil {
			return err
		}
		fmt.Println(line)
	}
	fmt.Fprintf(os.Stderr, "created the %s in %s (%s); name it in the config:\n  ca:\n    %s: {key: %q", p, u, ca.KeyAlgorithm(pub), string(p), u)
	if x509CA {
		fmt.Fprintf(os.Stderr, ", cert: %q", *certPath)
	}
	fmt.Fprintln(os.Stderr, "}")
	if u.HasPIN() {
		fmt.Fprintln(os.Stderr, "(the PIN is shown as REDACTED: in the config, prefer pin-source=FILE to pin-value)")
	}
	return nil
}
