package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/localsvc"
)

// pgEnv is the PostgreSQL server for the pgbench workload: TLS only,
// client certificates from the bastion's database CA, no passwords.
type pgEnv struct {
	pg           *localsvc.Postgres
	addr         string
	serverCAFile string // for the bastion's target tls.ca_file
	certFile     string // libpq client certificate for the baseline
	keyFile      string
	rootFile     string
	pgbench      string
	// The bastion's PostgreSQL listener and alice's login credentials for
	// it (a client certificate from the database-client CA).
	listenAddr                        string
	listenCert, listenKey, listenRoot string
}

// setupPostgres starts PostgreSQL 15 with the bastion's database CA as its
// client CA and a pgbench database, before the bastion starts (its config
// names the server).
func (e *env) setupPostgres() (err error) {
	if err := localsvc.CheckPostgresBinDir(localsvc.PostgresBinDir); err != nil {
		return fmt.Errorf("PostgreSQL 15 binaries not found: %w", err)
	}
	// The server's certificate comes from a CA of its own; the bastion
	// trusts it through its target's tls.ca_file.
	serverCA, err := localsvc.NewCA("postgres-test-server-ca")
	if err != nil {
		return err
	}
	srv, err := serverCA.IssueServer([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	dbca := &localsvc.CA{Cert: e.keys.DBCA.Cert, Key: e.keys.DBCA.Key, PEM: e.keys.DBCA.PEM}
	su, err := dbca.IssueClient(localsvc.PostgresSuperuser, time.Hour)
	if err != nil {
		return err
	}
	p, err := localsvc.StartPostgres(context.Background(), localsvc.PostgresConfig{
		Name:         "bench-pg",
		ServerCert:   srv,
		ClientCA:     dbca.PEM,
		SuperuserTLS: &tls.Config{RootCAs: serverCA.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{su}, MinVersion: tls.VersionTLS12},
		Roles:        []string{"bench"},
		Databases:    []string{"bench"},
		Seed:         []localsvc.SeedSQL{{DB: "postgres", SQL: "ALTER DATABASE bench OWNER TO bench"}},
		// Durable, as a production store is (the test default turns
		// fsync off): the PostgreSQL ingest row compares it with bbolt,
		// which syncs every commit; pgbench -S only reads.
		Settings: map[string]string{"max_connections": "40", "fsync": "on", "synchronous_commit": "on",
			"full_page_writes": "on", "shared_buffers": "128MB"},
	})
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	defer func() {
		if err != nil {
			p.Stop()
		} else {
			e.onCleanup(p.Stop)
		}
	}()
	pe := &pgEnv{pg: p, addr: p.Addr}
	if pe.pgbench, err = p.Tool("pgbench"); err != nil {
		return err
	}
	client, err := dbca.IssueClient("bench", time.Hour)
	if err != nil {
		return err
	}
	dir := filepath.Join(e.dir, "pg-client")
	os.MkdirAll(dir, 0o700)
	if pe.certFile, pe.keyFile, pe.rootFile, err = localsvc.WriteLibpqFiles(dir, "bench", client, serverCA.PEM); err != nil {
		return err
	}
	pe.serverCAFile = pe.rootFile
	if err := e.listenerCredentials(pe); err != nil {
		return err
	}
	init := exec.Command(pe.pgbench, "-i", "-s", "2", "-q", pe.directConn(p.Port))
	if out, err := init.CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	e.pg = pe
	return nil
}

// directConn is a libpq connection string with TLS and the client
// certificate, as the baseline uses through OpenSSH's forward.
func (pe *pgEnv) directConn(port int) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=bench dbname=bench sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s",
		port, pe.rootFile, pe.certFile, pe.keyFile)
}

// benchPgbench runs pgbench -S through OpenSSH's -L (TLS to the server
// end to end, client certificate) and through the bastion's inspecting
// forward (which terminates the protocol, parses every statement, applies
// the rules and masking, and authenticates upstream with its own
// per-session certificate).
func (e *env) benchPgbench() result {
	r := result{
		Workload: "`pgbench -S`, every statement parsed, masking on",
		Baseline: "`pgbench -S` through OpenSSH `-L`",
		Goal:     ">= 0.9x TPS",
	}
	if e.pg == nil {
		if e.pgErr != nil {
			return failed(r, e.pgErr)
		}
		return failed(r, errors.New("PostgreSQL was not set up"))
	}
	var base, bast, relay, cpuBase, cpuBast, cpuRelay []float64
	for round := range e.opt.rounds {
		var got [2]float64
		for _, s := range order(round) {
			tps, n, cpu, err := e.pgbenchOnce(s, false)
			if err != nil {
				return failed(r, err)
			}
			got[s] = tps
			per := cpu.Seconds() / float64(n) * 1e6
			if s == baseline {
				cpuBase = append(cpuBase, per)
			} else {
				cpuBast = append(cpuBast, per)
			}
			logf("  pgbench round %d %s: %.0f TPS", round+1, s, tps)
		}
		base, bast = append(base, got[baseline]), append(bast, got[viaBastion])
		if e.opt.diagnose {
			tps, n, cpu, err := e.pgbenchOnce(viaBastion, true)
			if err != nil {
				return failed(r, err)
			}
			relay, cpuRelay = append(relay, tps), append(cpuRelay, cpu.Seconds()/float64(n)*1e6)
			logf("  pgbench round %d bastion relaying bytes: %.0f TPS", round+1, tps)
		}
	}
	if len(relay) > 0 {
		r.notef("floor of the bastion's own relay: pgbench through the bastion's `-L` to a `tcp` target in front of the same server, recording metadata only (bytes relayed as sshd relays them, TLS end to end as on OpenSSH's side), in the same rounds: %s TPS, %s of OpenSSH's `-L`, %s µs of bastion CPU per transaction; parsing, judging and masking every statement (the row) is %sx of that relay",
			fmtNum(median(relay)), ratioCell(ratios(relay, base)), fmtNum(median(cpuRelay)), fmtNum(median(bast)/median(relay)))
	}
	rs := ratios(bast, base)
	r.Base = fmt.Sprintf("%s TPS", fmtNum(median(base)))
	r.Bastion = fmt.Sprintf("%s TPS", fmtNum(median(bast)))
	r.Ratio = ratioCell(rs)
	r.CPUBase = fmt.Sprintf("%s µs per tx", fmtNum(median(cpuBase)))
	r.CPUBast = fmt.Sprintf("%s µs per tx", fmtNum(median(cpuBast)))
	r.Mark = mark(median(rs) >= 0.9)
	return r
}

// listenerCredentials picks the listener's port and writes alice's client
// certificate for it, as `bastion login` would.
func (e *env) listenerCredentials(pe *pgEnv) error {
	port, err := localsvc.FreeLoopbackPort()
	if err != nil {
		return err
	}
	pe.listenAddr = fmt.Sprintf("127.0.0.1:%d", port)
	id, err := e.auth.Stamp(ca.Identity{User: benchUser, Issuer: e.idp.Issuer(), Subject: "u-alice", Groups: []string{"bench"}}, 4*time.Hour)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	cert, err := e.auth.SignDBAccess(id, key.Public())
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	dir := filepath.Join(e.dir, "pg-listener")
	os.MkdirAll(dir, 0o700)
	pe.listenCert, pe.listenKey, pe.listenRoot = filepath.Join(dir, "postgres.crt"), filepath.Join(dir, "postgres.key"), filepath.Join(dir, "postgres-ca.pem")
	for _, f := range []struct {
		path string
		data []byte
	}{
		{pe.listenCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})},
		{pe.listenKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})},
		{pe.listenRoot, e.keys.DBClientCA.PEM},
	} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// benchPgbenchListener runs pgbench -S through the bastion's PostgreSQL
// listener (TLS with alice's login certificate, every statement judged and
// masked, the bastion's own TLS upstream) against pgbench straight to
// PostgreSQL over TLS with a client certificate: no bastion at all.
func (e *env) benchPgbenchListener() result {
	r := result{
		Workload: "`pgbench -S` through the PostgreSQL listener (no ssh), every statement parsed, masking on",
		Baseline: "`pgbench -S` to PostgreSQL directly over TLS",
		Goal:     ">= 0.8x TPS",
	}
	// The floor of any hop: HAProxy in TCP mode between pgbench and
	// PostgreSQL (TLS end to end through it), run in the same rounds.
	hopPort, stopHop, hopErr := startTCPHop(e.dir, e.pg.addr)
	if hopErr == nil {
		defer stopHop()
	}
	var base, bast, cpuBast, hop []float64
	for round := range e.opt.rounds {
		if hopErr == nil {
			tps, _, err := e.pgbenchRun(baseline, e.pg.directConn(hopPort))
			if err != nil {
				return failed(r, fmt.Errorf("through HAProxy: %w", err))
			}
			hop = append(hop, tps)
			logf("  pgbench (listener) round %d through HAProxy: %.0f TPS", round+1, tps)
		}
		var got [2]float64
		for _, s := range order(round) {
			conn := e.pg.directConn(e.pg.pg.Port)
			if s == viaBastion {
				host, port, _ := net.SplitHostPort(e.pg.listenAddr)
				conn = fmt.Sprintf("host=%s port=%s user=bench dbname=pg1/bench sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s",
					host, port, e.pg.listenRoot, e.pg.listenCert, e.pg.listenKey)
			}
			c0, err := readCPU(e.bastion.pid)
			if err != nil {
				return failed(r, err)
			}
			tps, n, err := e.pgbenchRun(s, conn)
			if err != nil {
				return failed(r, err)
			}
			if s == viaBastion {
				cpu, err := e.cpuEnd(s, c0)
				if err != nil {
					return failed(r, err)
				}
				cpuBast = append(cpuBast, cpu.Seconds()/float64(n)*1e6)
			}
			got[s] = tps
			logf("  pgbench (listener) round %d %s: %.0f TPS", round+1, s, tps)
		}
		base, bast = append(base, got[baseline]), append(bast, got[viaBastion])
	}
	rs := ratios(bast, base)
	r.Base = fmt.Sprintf("%s TPS", fmtNum(median(base)))
	r.Bastion = fmt.Sprintf("%s TPS", fmtNum(median(bast)))
	r.Ratio = ratioCell(rs)
	r.CPUBast = fmt.Sprintf("%s µs per tx", fmtNum(median(cpuBast)))
	r.Mark = mark(median(rs) >= 0.8)
	if hopErr != nil {
		r.notef("floor of any hop: not measured (%v)", hopErr)
	} else {
		hr := ratios(hop, base)
		r.notef("floor of any hop: pgbench through HAProxy in TCP mode (a relay that neither terminates TLS nor reads a byte) to the same server, in the same rounds: %s TPS, %s of direct; the bastion's listener is %sx of that relay", fmtNum(median(hop)), ratioCell(hr), fmtNum(median(bast)/median(hop)))
	}
	return r
}

// startTCPHop starts HAProxy in TCP mode on a free loopback port in front
// of addr and returns the port and a function that stops it.
func startTCPHop(dir, addr string) (int, func(), error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return 0, nil, err
	}
	port, err := localsvc.FreeLoopbackPort()
	if err != nil {
		return 0, nil, err
	}
	cfg := filepath.Join(dir, "hop-haproxy.cfg")
	conf := fmt.Sprintf("global\n  maxconn 200\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 5m\n  timeout server 5m\nfrontend f\n  bind 127.0.0.1:%d\n  default_backend b\nbackend b\n  server pg %s\n", port, addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return 0, nil, err
	}
	cmd := exec.Command(bin, "-f", cfg, "-db")
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return port, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return 0, nil, fmt.Errorf("haproxy did not listen on %d: %w", port, err)
		}
	}
}

// pgbenchRun runs pgbench -S on conn and returns its TPS and transactions.
func (e *env) pgbenchRun(s side, conn string) (float64, int64, error) {
	secs := int(e.opt.pgTime / time.Second)
	out, err := exec.Command(e.pg.pgbench, "-S", "-n", "-c", strconv.Itoa(e.opt.pgClients), "-j", "2", "-T", strconv.Itoa(max(secs, 1)), conn).CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("%s pgbench: %v\n%s", s, err, out)
	}
	m, n := tpsRe.FindSubmatch(out), txRe.FindSubmatch(out)
	if m == nil || n == nil {
		return 0, 0, fmt.Errorf("%s pgbench: no TPS in its output:\n%s", s, out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	tx, _ := strconv.ParseInt(string(n[1]), 10, 64)
	return tps, tx, nil
}

var (
	tpsRe = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	txRe  = regexp.MustCompile(`number of transactions actually processed: ([0-9]+)`)
)

// pgbenchOnce runs pgbench through one side's `-L`: OpenSSH's, or the
// bastion's to its postgres target (every statement parsed and judged);
// with relay, the bastion's to a `tcp` target in front of the same server
// that records metadata only, so the bastion relays the bytes as sshd
// does, TLS end to end as on OpenSSH's side.
func (e *env) pgbenchOnce(s side, relay bool) (tps float64, tx int64, cpu time.Duration, err error) {
	lport, err := localsvc.FreeLoopbackPort()
	if err != nil {
		return 0, 0, 0, err
	}
	_, pport, _ := net.SplitHostPort(e.pg.addr)
	spec, host := fmt.Sprintf("127.0.0.1:%d:127.0.0.1:%s", lport, pport), "jump"
	conn := e.pg.directConn(lport)
	switch {
	case s == viaBastion && relay:
		spec, host = fmt.Sprintf("127.0.0.1:%d:pgtcp:%s", lport, pport), "bastion"
	case s == viaBastion:
		spec, host = fmt.Sprintf("127.0.0.1:%d:pg1:%s", lport, pport), "bastion"
		conn = fmt.Sprintf("host=127.0.0.1 port=%d user=bench dbname=bench sslmode=disable", lport)
	}
	c0, err := e.cpuStart(s)
	if err != nil {
		return 0, 0, 0, err
	}
	fwd := e.sshCmd("-N", "-o", "ExitOnForwardFailure=yes", "-L", spec, host)
	var fwdErr bytes.Buffer
	fwd.Stderr = &fwdErr
	if err := fwd.Start(); err != nil {
		return 0, 0, 0, err
	}
	defer stopSSH(fwd)
	if !localsvc.WaitListening(fmt.Sprintf("127.0.0.1:%d", lport), nil, 20*time.Second) {
		return 0, 0, 0, fmt.Errorf("%s -L for pgbench did not listen: %s", s, fwdErr.String())
	}
	if tps, tx, err = e.pgbenchRun(s, conn); err != nil {
		return 0, 0, 0, fmt.Errorf("%w\nssh: %s", err, fwdErr.String())
	}
	stopSSH(fwd)
	cpu, err = e.cpuEnd(s, c0)
	return tps, tx, cpu, err
}
