package main

import (
	"bytes"
	"fmt"
	"github.com/bastionhq/bastion/internal/localsvc"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

const postgresBinDir = testenv.PostgresBinDir

// pgEnv is the PostgreSQL server for the pgbench workload: TLS only,
// client certificates from the bastion's database CA, no passwords.
type pgEnv struct {
	pg           *testenv.Postgres
	addr         string
	serverCAFile string // for the bastion's target tls.ca_file
	certFile     string // libpq client certificate for the baseline
	keyFile      string
	rootFile     string
	pgbench      string
}

// setupPostgres starts PostgreSQL 15 with the bastion's database CA as its
// client CA and a pgbench database, before the bastion starts (its config
// names the server). It returns errPending while the bastion does not
// inspect kind: postgres targets yet.
func (e *env) setupPostgres() (err error) {
	if !e.pgproxy {
		return errPending
	}
	tb := &benchTB{}
	defer func() {
		if p := recover(); p != nil {
			f, ok := p.(tbFailure)
			if !ok {
				panic(p)
			}
			err = f
		}
		if err != nil {
			tb.runCleanups()
		} else {
			e.onCleanup(tb.runCleanups)
		}
	}()
	dbca := e.keys.DBCA
	p := testenv.StartPostgres(tb, testenv.PostgresOptions{
		ClientCA:  &testenv.PostgresCA{Cert: dbca.Cert, Key: dbca.Key, PEM: dbca.PEM},
		Roles:     []string{"bench"},
		Databases: []string{"bench"},
		SeedSQL:   "ALTER DATABASE bench OWNER TO bench",
		Settings:  map[string]string{"max_connections": "40"},
	})
	pe := &pgEnv{pg: p, addr: p.Addr, pgbench: p.Tool(tb, "pgbench")}
	dir := filepath.Join(e.dir, "pg-client")
	os.MkdirAll(dir, 0o700)
	pe.certFile, pe.keyFile, pe.rootFile = p.LibpqFiles(tb, dir, "bench")
	pe.serverCAFile = pe.rootFile
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
		r.Mark = markPending
		r.notef("pending: the bastion does not link bastion/pgproxy yet (`go list -deps ./cmd/bastion`), so a kind: postgres target is still a plain forward; this row runs once the PostgreSQL integration lands")
		return r
	}
	var base, bast, cpuBase, cpuBast []float64
	for round := range e.opt.rounds {
		var got [2]float64
		for _, s := range order(round) {
			tps, n, cpu, err := e.pgbenchOnce(s)
			if err != nil {
				return failed(r, err)
			}
			got[s] = tps
			per := cpu.Seconds() / (float64(n) / 1000)
			if s == baseline {
				cpuBase = append(cpuBase, per)
			} else {
				cpuBast = append(cpuBast, per)
			}
			logf("  pgbench round %d %s: %.0f TPS", round+1, s, tps)
		}
		base, bast = append(base, got[baseline]), append(bast, got[viaBastion])
	}
	rs := ratios(bast, base)
	r.Base = fmt.Sprintf("%s TPS", fmtNum(median(base)))
	r.Bastion = fmt.Sprintf("%s TPS", fmtNum(median(bast)))
	r.Ratio = ratioCell(rs)
	r.CPUBase = fmt.Sprintf("%s s per 1,000 tx", fmtNum(median(cpuBase)))
	r.CPUBast = fmt.Sprintf("%s s per 1,000 tx", fmtNum(median(cpuBast)))
	r.Mark = mark(median(rs) >= 0.9)
	return r
}

var (
	tpsRe = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	txRe  = regexp.MustCompile(`number of transactions actually processed: ([0-9]+)`)
)

func (e *env) pgbenchOnce(s side) (tps float64, tx int64, cpu time.Duration, err error) {
	lport, err := localsvc.FreeLoopbackPort()
	if err != nil {
		return 0, 0, 0, err
	}
	_, pport, _ := net.SplitHostPort(e.pg.addr)
	spec, host := fmt.Sprintf("127.0.0.1:%d:127.0.0.1:%s", lport, pport), "jump"
	conn := e.pg.directConn(lport)
	if s == viaBastion {
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
	secs := int(e.opt.pgTime / time.Second)
	out, err := exec.Command(e.pg.pgbench, "-S", "-n", "-c", strconv.Itoa(e.opt.pgClients), "-j", "2", "-T", strconv.Itoa(max(secs, 1)), conn).CombinedOutput()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%s pgbench: %v\n%s\nssh: %s", s, err, out, fwdErr.String())
	}
	m, n := tpsRe.FindSubmatch(out), txRe.FindSubmatch(out)
	if m == nil || n == nil {
		return 0, 0, 0, fmt.Errorf("%s pgbench: no TPS in its output:\n%s", s, out)
	}
	tps, _ = strconv.ParseFloat(string(m[1]), 64)
	tx, _ = strconv.ParseInt(string(n[1]), 10, 64)
	stopSSH(fwd)
	cpu, err = e.cpuEnd(s, c0)
	return tps, tx, cpu, err
}

// benchTB lets the harness reuse internal/testenv's PostgreSQL starter,
// which reports through testing.TB: a failure or skip panics with a
// tbFailure that setupPostgres recovers, and cleanups run when the bench
// ends. Only the methods testenv calls are implemented; the embedded nil
// interface makes any other call fail loudly.
type benchTB struct {
	testing.TB
	cleanups []func()
}

type tbFailure struct{ msg string }

func (f tbFailure) Error() string { return f.msg }

func (t *benchTB) Helper()                   {}
func (t *benchTB) Cleanup(f func())          { t.cleanups = append(t.cleanups, f) }
func (t *benchTB) Fatal(args ...any)         { panic(tbFailure{fmt.Sprint(args...)}) }
func (t *benchTB) Fatalf(f string, a ...any) { panic(tbFailure{fmt.Sprintf(f, a...)}) }
func (t *benchTB) Skip(args ...any)          { panic(tbFailure{fmt.Sprint(args...)}) }
func (t *benchTB) Skipf(f string, a ...any)  { panic(tbFailure{fmt.Sprintf(f, a...)}) }
func (t *benchTB) Logf(f string, a ...any)   { logf(f, a...) }
func (t *benchTB) Failed() bool              { return false }

func (t *benchTB) runCleanups() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}
