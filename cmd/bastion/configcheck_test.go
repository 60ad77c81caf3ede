package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/devidp"
)

// TestConfigCheckFiles: config check fails, naming the field, for every
// file the config names that serve could not use, and serve exits with
// EX_CONFIG (which the systemd unit does not restart) instead of dying
// later; it warns when an identity provider's discovery document cannot
// be fetched.
func TestConfigCheckFiles(t *testing.T) {
	idp, err := devidp.Start(devidp.Config{Clients: []devidp.Client{{ID: "bastion", Device: true}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert, key := write("tls.crt", certPEM, 0o644), write("tls.key", keyPEM, 0o600)
	ca := write("ca.pem", certPEM, 0o644)
	notPEM := write("notpem.pem", []byte("hello\n"), 0o644)
	openKey := write("open.key", keyPEM, 0o644)
	base := "data_dir: " + filepath.Join(dir, "data") + "\noidc: {issuer: \"" + idp.Issuer() + "\", client_id: bastion}\n"
	pg := func(caFile string) string {
		return "targets: [{name: pg1, kind: postgres, address: \"127.0.0.1:5432\", tls: {ca_file: \"" + caFile + "\"}}]\n"
	}
	tests := []struct {
		name, yaml   string
		code         int
		want, warn   string
		serveRefuses bool
	}{
		{name: "good", yaml: base + "tls: {cert_file: " + cert + ", key_file: " + key + "}\n" + pg(ca)},
		{name: "missing cert", yaml: base + "tls: {cert_file: " + dir + "/nope.crt, key_file: " + key + "}\n", code: 1,
			want: "config: tls.cert_file: " + dir + "/nope.crt does not exist", serveRefuses: true},
		{name: "cert and key that do not match", yaml: base + "tls: {cert_file: " + cert + ", key_file: " + notPEM + "}\n", code: 1,
			want: "config: tls: ", serveRefuses: true},
		{name: "missing target CA file", yaml: base + pg(dir+"/missing.pem"), code: 1,
			want: "config: targets[0].tls.ca_file: " + dir + "/missing.pem does not exist", serveRefuses: true},
		{name: "target CA file without a certificate", yaml: base + pg(notPEM), code: 1,
			want: "config: targets[0].tls.ca_file: " + notPEM + " holds no PEM certificate", serveRefuses: true},
		{name: "relative path resolved against the config", yaml: base + pg("ca.pem")},
		{name: "key readable by everyone", yaml: base + "tls: {cert_file: " + cert + ", key_file: " + openKey + "}\n",
			warn: "tls.key_file: " + openKey + " is readable by every user"},
		{name: "data_dir is a file", yaml: "data_dir: " + ca + "\noidc: {issuer: \"" + idp.Issuer() + "\", client_id: bastion}\n", code: 1,
			want: "config: data_dir: " + ca + " is not a directory", serveRefuses: true},
		{name: "issuer down", yaml: "data_dir: " + dir + "/d2\noidc: {issuer: \"http://127.0.0.1:9\", client_id: bastion}\n",
			warn: "config: oidc.issuer: cannot fetch the discovery document"},
		{name: "issuer with a trailing slash", yaml: "data_dir: " + dir + "/d3\noidc: {issuer: \"" + idp.Issuer() + "/\", client_id: bastion}\n",
			warn: "the discovery document names the issuer"},
		{name: "sql rule naming a kind no statement has", yaml: base + "rules: [{name: no-drop, on: sql, match: {statement: drop_tables}, action: block}]\n", code: 1,
			want: `policy: rules[0] (no-drop): match.statement "drop_tables" is not a statement kind the bastion gives any statement`, serveRefuses: true},
		// What the identity provider's verifier refuses at start must fail the check too.
		{name: "workload name that is not a username", yaml: "data_dir: " + filepath.Join(dir, "data") + "\noidc: {issuer: \"" + idp.Issuer() + "\", client_id: bastion, workload: [{issuer: \"" + idp.Issuer() + "\", audience: a, subject: \"repo:*\", name: CI-ETL}]}\n", code: 1,
			want: "config: oidc.workload[0].name: ", serveRefuses: true},
		{name: "username claim the bastion reads for itself", yaml: "data_dir: " + filepath.Join(dir, "data") + "\noidc: {issuer: \"" + idp.Issuer() + "\", client_id: bastion, username_claim: aud}\n", code: 1,
			want: "config: oidc.username_claim: ", serveRefuses: true},
		{name: "PIN file others can read", yaml: base + "ca: {user: {key: \"pkcs11:token=b;id=%01;object=u?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=" + openKey + "\"}}\n", code: 1,
			want: "config: ca.user.key: pin-source " + openKey + ": permissions 0644 allow access by other users", serveRefuses: true},
		{name: "PIN in the config", yaml: base + "ca: {user: {key: \"pkcs11:token=b;id=%01;object=u?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=31337-in-config\"}}\n",
			warn: "config: ca.user.key: holds its PIN (pin-value)"},
		{name: "value error names the field", yaml: base + "certs: {user_ttl: forever}\n", code: 1,
			want: `config: certs.user_ttl: "forever" is not a duration`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := write("c"+itoa(i)+".yaml", []byte(tc.yaml), 0o600)
			out, errOut, code := cliRun(t, "config", "check", "--config", cfg)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, out, errOut)
			}
			if tc.want != "" && !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q, want %q", errOut, tc.want)
			}
			if tc.warn != "" && !strings.Contains(errOut, "warning: ") || !strings.Contains(errOut, tc.warn) {
				t.Errorf("stderr %q, want the warning %q", errOut, tc.warn)
			}
			if strings.Contains(out+errOut, "31337-in-config") {
				t.Errorf("config check shows the PIN: %q %q", out, errOut)
			}
			if tc.code == 0 && tc.warn == "" && errOut != "" {
				t.Errorf("stderr %q, want nothing", errOut)
			}
			if tc.serveRefuses {
				_, errOut, code := cliRun(t, "serve", "--config", cfg)
				if code != exConfig || !strings.Contains(errOut, tc.want) {
					t.Errorf("serve: exit %d, stderr %q; want %d and %q", code, errOut, exConfig, tc.want)
				}
			}
		})
	}
	t.Run("offline", func(t *testing.T) {
		cfg := write("offline.yaml", []byte("data_dir: "+dir+"/d4\noidc: {issuer: \"http://127.0.0.1:9\", client_id: bastion}\n"), 0o600)
		if out, errOut, code := cliRun(t, "config", "check", "--config", cfg, "--offline"); code != 0 || errOut != "" || !strings.Contains(out, "ok") {
			t.Errorf("got exit %d, %q, %q", code, out, errOut)
		}
	})
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bastion.test"}, DNSNames: []string{"bastion.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

// TestMetrics: every bastion_* series is there at zero from the first
// scrape; metrics.listen moves /metrics off the public HTTP listener and
// metrics.token_env requires a bearer token.
func TestMetrics(t *testing.T) {
	get := func(url, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	t.Run("at zero on the HTTP listener", func(t *testing.T) {
		w := newWorld(t)
		code, body := get(w.url()+"/metrics", "")
		if code != 200 {
			t.Fatalf("GET /metrics: %d", code)
		}
		for _, series := range []string{
			`bastion_sessions_active{kind="shell"} 0`, `bastion_sessions_total{kind="exec"} 0`,
			`bastion_bytes_total{direction="down",kind="tcp"} 0`, `bastion_auth_failures_total{reason="expired"} 0`,
			`bastion_upstream_dial_seconds_count{kind="ssh",result="ok"} 0`, `bastion_rule_decisions_total{action="block",on="command"} 0`,
			`bastion_channels_refused_total{type="direct-tcpip"} 0`, `bastion_recording_flush_seconds_count{result="error"} 0`,
		} {
			if !strings.Contains(body, series) {
				t.Errorf("no %s before any traffic", series)
			}
		}
	})
	t.Run("own listener and token", func(t *testing.T) {
		t.Setenv("BASTION_TEST_METRICS_TOKEN", "s3cret")
		w := newWorldWith(t, "metrics: {listen: \"127.0.0.1:0\", token_env: BASTION_TEST_METRICS_TOKEN}\n")
		if code, _ := get(w.url()+"/metrics", "s3cret"); code != 404 {
			t.Errorf("/metrics on the public listener: HTTP %d, want 404", code)
		}
		addr := "http://" + w.app.MetricsAddr() + "/metrics"
		if code, _ := get(addr, ""); code != 401 {
			t.Errorf("without the token: HTTP %d, want 401", code)
		}
		if code, _ := get(addr, "wrong"); code != 401 {
			t.Errorf("with a wrong token: HTTP %d, want 401", code)
		}
		if code, body := get(addr, "s3cret"); code != 200 || !strings.Contains(body, "bastion_sessions_total") {
			t.Errorf("with the token: HTTP %d", code)
		}
	})
}
