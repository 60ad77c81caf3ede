// Package ca is the bastion's certificate authority: it holds the CA keys,
// verifies OIDC ID tokens, and issues every certificate the bastion hands
// out or presents. It knows nothing of sessions, targets' traffic or the
// recorder; the SSH server imports it for [Identity] and [Authority] only.
//
// # Keys
//
// [Keys] holds one key per purpose, made at first start under
// data_dir/ca with 0600 permissions ([LoadOrCreateKeys] refuses a key file
// or directory others can read):
//
//	UserCA    signs the login certificates of people and jobs (trusted by the bastion only)
//	TargetCA  signs a fresh certificate per session toward a target (targets' TrustedUserCAKeys)
//	HostCA    signs the bastion's host certificate and the per-target host certificates
//	          it shows when it intercepts ssh -J (clients' @cert-authority line)
//	DBCA      X.509: per-session PostgreSQL client certificates (the server's ssl_ca_file)
//	DBClientCA X.509: a login's client certificate for the bastion's PostgreSQL listener,
//	          that listener's server certificate, and SQL API access tokens (dbaccess.go);
//	          no database trusts it, so a login's certificate never opens a database directly
//	HostKey   the bastion's own SSH host key, certified by HostCA at start
//	SealKey   signs recording seals and audit checkpoints
//
// Any of the CA keys and the seal key can instead be a key URI ([KeyConfig],
// [LoadKeys]): a key in a PKCS#11 token, a YubiKey, AWS KMS, Google Cloud
// KMS or Azure Key Vault, reached through go.step.sm/crypto/kms, whose
// private half never sits on disk. Its type follows the key (Ed25519, or
// ECDSA P-256 where the module lacks Ed25519); every such key signs a test
// message at load, and a key that cannot is a [KeyError] naming it, with
// any PIN redacted (package internal/keyuri parses and redacts the URIs).
// [CreateKey] makes a key inside the module (`bastion ca init`). The host
// key stays a file: it is not a CA and signs every handshake.
//
// # Identity
//
// An [Identity] is who a certificate speaks for: user name, the OIDC
// issuer and subject it came from, groups, whether it is a workload (CI
// job), and the certificate's serial. It round-trips through an OpenSSH
// certificate: one principal (the user), a key ID naming user, issuer and
// serial, and the rest in signed extensions, so the bastion never asks the
// IdP again ([IdentityFromCertificate] reads it back and checks it).
//
// # Issuance
//
// [Verifier] checks an ID token with go-oidc against the configured issuer
// (pinned asymmetric algorithms, audience, azp, expiry) or against a
// configured workload issuer (CI), and maps its claims to an Identity.
// [Authority] signs: SignUser (validity from TTL, the one place lifetimes
// are derived, ValidAfter backdated for clock skew), SignTarget (a
// certificate for one login in one session, a couple of minutes),
// SignHost, SignDBClient and SignDBServer. [Server] is the HTTP login API
// (GET /v1/info, POST /v1/certificate): it verifies the token, signs the
// caller's public key and writes an audit record first, refusing to issue
// what it cannot audit.
//
// The user side of a login (browser and device flows, the ssh-agent,
// ssh_config) is package internal/login, a client of this API.
//
// # Concurrency
//
// Authority, Verifier and Server are safe for concurrent use; a Verifier
// builds one go-oidc verifier per issuer and audience, lazily, and reuses it.
package ca
