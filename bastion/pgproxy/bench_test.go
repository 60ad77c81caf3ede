package pgproxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

// BenchmarkPgbenchSelect runs `pgbench -S` (select-only, simple protocol) against the
// same server through a plain TCP forward and through the inspecting proxy (every
// statement classified and judged, results masked, transcript rendered), alternating a
// few short rounds of each, and reports both rates and their ratio. It runs once
// whatever b.N is:
//
//	go test -run '^$' -bench PgbenchSelect -benchtime 1x ./bastion/pgproxy
//
// It also runs pgbench straight to the server (TLS, no hop at all): the forward's ratio
// to that is what any hop costs on the machine, the floor under the proxy's.
//
// PGBENCH_SECONDS (default 3) sets each run's length, PGBENCH_ROUNDS (default 3) the
// number of rounds, PGBENCH_CLIENTS (default 2) the number of clients.
func BenchmarkPgbenchSelect(b *testing.B) {
	pg := startCluster(b)
	pgbench := pg.Tool(b, "pgbench")
	seconds := envInt("PGBENCH_SECONDS", 3)
	clients := envInt("PGBENCH_CLIENTS", 2)

	dir := b.TempDir()
	cert, key, root := pg.LibpqFiles(b, dir, "postgres")
	tlsEnv := append(os.Environ(), "PGSSLMODE=verify-ca", "PGSSLCERT="+cert, "PGSSLKEY="+key, "PGSSLROOTCERT="+root)
	initCmd := exec.Command(pgbench, "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", "postgres", "shop")
	initCmd.Env = tlsEnv
	if out, err := initCmd.CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}

	fwdPort := plainForward(b, pg.Addr)
	classifier := NewClassifier(1024)
	h := startProxy(b, pg, func(c *Config) {
		c.Transcript = io.Discard
		c.Audit = func(Event) {}
		c.Classifier = classifier
		c.Authorize = func(context.Context, Startup) error { return nil }
	})

	run := func(port int, env []string) float64 {
		cmd := exec.Command(pgbench, "-S", "-n", "-T", strconv.Itoa(seconds), "-c", strconv.Itoa(clients), "-j", "1",
			"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", "shop")
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("pgbench: %v\n%s", err, out)
		}
		m := regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`).FindSubmatch(out)
		if m == nil {
			b.Fatalf("no tps in pgbench output:\n%s", out)
		}
		tps, _ := strconv.ParseFloat(string(m[1]), 64)
		return tps
	}
	// The same proxy, but pgbench also speaks TLS to it (SSLRequest answered with
	// ServerTLS): two TLS legs instead of one, the proxy's worst case.
	ca := testenv.NewPostgresCA(b, "bench-proxy-ca")
	proxyCert := ca.IssueServer(b, nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	ht := startProxy(b, pg, func(c *Config) {
		c.Transcript = io.Discard
		c.Audit = func(Event) {}
		c.Classifier = classifier
		c.Authorize = func(context.Context, Startup) error { return nil }
		c.ServerTLS = &tls.Config{Certificates: []tls.Certificate{proxyCert}, MinVersion: tls.VersionTLS12}
	})

	// The baseline client speaks TLS with its certificate through the forward, as it
	// must to reach a cert-only server over a plain tunnel; through the proxy it needs
	// neither (the proxy authenticates upstream).
	plainEnv := append(os.Environ(), "PGSSLMODE=disable")
	requireEnv := append(os.Environ(), "PGSSLMODE=require")
	// Rounds alternate the three setups so each ratio compares neighbours in time (the
	// machines these run on are shared and noisy); the reported figures are medians.
	rounds := envInt("PGBENCH_ROUNDS", 3)
	var direct, fwd, prx, prxTLS, ratio, ratioTLS, fwdDirect, tlsDirect []float64
	b.ResetTimer()
	for i := 0; i < rounds; i++ {
		d := run(pg.Port, tlsEnv)
		f := run(fwdPort, tlsEnv)
		p := run(h.port, plainEnv)
		pt := run(ht.port, requireEnv)
		direct, fwd, prx, prxTLS = append(direct, d), append(fwd, f), append(prx, p), append(prxTLS, pt)
		ratio, ratioTLS = append(ratio, p/f), append(ratioTLS, pt/f)
		fwdDirect, tlsDirect = append(fwdDirect, f/d), append(tlsDirect, pt/d)
	}
	b.StopTimer()
	hits, misses := classifier.Stats()
	b.ReportMetric(median(fwd), "tps_forward")
	b.ReportMetric(median(prx), "tps_proxy")
	b.ReportMetric(median(ratio), "ratio")
	b.ReportMetric(median(ratioTLS), "ratio_client_tls")
	b.ReportMetric(median(fwdDirect), "ratio_forward_direct")
	b.ReportMetric(median(tlsDirect), "ratio_client_tls_direct")
	fmt.Printf("pgbench -S, %d clients, %d rounds of %ds: direct %.0f tps, plain forward %.0f tps, pgproxy %.0f tps, pgproxy with client TLS too %.0f tps (medians); "+
		"pgproxy/forward per round %.2f, median %.2f; with client TLS %.2f, median %.2f; forward/direct %.2f, median %.2f; pgproxy with client TLS/direct %.2f, median %.2f; "+
		"classifier cache %d hits, %d misses\n",
		clients, rounds, seconds, median(direct), median(fwd), median(prx), median(prxTLS), ratio, median(ratio), ratioTLS, median(ratioTLS),
		fwdDirect, median(fwdDirect), tlsDirect, median(tlsDirect), hits, misses)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// plainForward is a byte-copying TCP forward to addr (the baseline: what `ssh -L` does).
func plainForward(tb testing.TB, addr string) int {
	tb.Helper()
	return acceptLoop(tb, func(c net.Conn) {
		defer c.Close()
		u, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return
		}
		defer u.Close()
		done := make(chan struct{})
		go func() {
			io.Copy(u, c)
			u.(*net.TCPConn).CloseWrite()
			close(done)
		}()
		io.Copy(c, u)
		c.(*net.TCPConn).CloseWrite()
		<-done
	}).(*net.TCPAddr).Port
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func BenchmarkClassify(b *testing.B) {
	sql := "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;"
	b.Run("uncached", func(b *testing.B) {
		for b.Loop() {
			if _, err := Classify(sql); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		c := NewClassifier(16)
		for b.Loop() {
			if _, err := c.Classify(sql); err != nil {
				b.Fatal(err)
			}
		}
	})
}
