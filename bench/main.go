package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"
)

// options are the command line.
type options struct {
	out           string        // Markdown report; "" prints only
	bastionBin    string        // a built bastion; "" builds one
	workDir       string        // parent of the scratch directory
	rounds        int           // rounds per side-by-side workload
	catRounds     int           // rounds of the shell-output workload and its diagnostics
	bytes         int64         // bytes per throughput run
	keys          int           // keystrokes per echo run
	enters        int           // lines per Enter-latency run
	issueTime     time.Duration // issuance measurement per round
	issueVariants bool          // issuance also with SoftHSM2 and a PostgreSQL store
	ingest        int64         // bytes per ingest round
	sessions      int           // idle sessions, and busy ones
	busyRounds    int           // rounds of the busy-sessions workload
	busyTime      time.Duration // its measurement per round, the sessions streaming
	busySSHD      bool          // the busy sessions run bash under OpenSSH's sshd
	replayMiB     int64         // size of the replay fixture
	replays       int           // time-to-first-frame runs
	pgTime        time.Duration // pgbench duration per run
	pgClients     int           // pgbench -c
	sqlTime       time.Duration // SQL API measurement per round and side
	only          string        // comma-separated workload names; "" = all
	inProcess     bool          // run the bastion in this process (for -cpuprofile)
	cpuProfile    string        // write a CPU profile (with -inprocess: the bastion's)
	memProfile    string        // with -inprocess: heap profile with the idle sessions open
	diagnose      bool          // add variant rows and notes that attribute the shell-output and pgbench costs
	keep          bool          // keep the scratch directory
}

// workloadNames are the workloads in the order the report lists them.
var workloadNames = []string{"forward", "cat", "pgbench", "sqlapi", "echo", "enter", "busy", "issue", "ingest", "idle", "replay", "webreplay"}

// runOrder is the order they run in after the idle sessions, which run
// first on a bastion of their own with an empty store (the replay fixture
// and the shell-output rounds fill the bbolt file, whose mapped pages count
// in the bastion's RSS); the in-harness ingest runs last.
var runOrder = []string{"replay", "webreplay", "issue", "echo", "enter", "busy", "forward", "cat", "pgbench", "sqlapi", "ingest"}

func main() {
	var opt options
	var bytesMiB, ingestMiB int64
	flag.StringVar(&opt.out, "out", "", "write the report as Markdown to this file")
	flag.StringVar(&opt.bastionBin, "bastion", "", "bastion binary to run (default: build ./cmd/bastion)")
	flag.StringVar(&opt.workDir, "workdir", "", "parent directory for scratch files (default: the system temp dir)")
	flag.IntVar(&opt.rounds, "rounds", 5, "rounds per workload, sides alternating")
	flag.IntVar(&opt.catRounds, "cat-rounds", 3, "rounds of the shell-output workload (each stores -mib in the bastion) and of each diagnostic")
	flag.Int64Var(&bytesMiB, "mib", 1024, "MiB per throughput run (-L and cat)")
	flag.IntVar(&opt.keys, "keys", 300, "keystrokes per echo run")
	flag.IntVar(&opt.enters, "enters", 60, "lines per Enter-latency run")
	flag.DurationVar(&opt.issueTime, "issue-time", 3*time.Second, "issuance measurement per round")
	flag.BoolVar(&opt.issueVariants, "issue-variants", true, "also measure issuance with the user CA in SoftHSM2 and with the store in PostgreSQL")
	flag.Int64Var(&ingestMiB, "ingest-mib", 512, "MiB per recording-ingest round")
	flag.IntVar(&opt.sessions, "sessions", 1000, "concurrent idle sessions, and busy sessions")
	flag.IntVar(&opt.busyRounds, "busy-rounds", 2, "rounds of the busy-sessions workload (each opens the busy sessions anew)")
	flag.DurationVar(&opt.busyTime, "busy-time", 5*time.Second, "busy-sessions measurement per round once every session streams")
	flag.BoolVar(&opt.busySSHD, "busy-sshd", false, "the busy sessions run bash under the OpenSSH target instead of the light target printing their lines (on 2 cores, a few hundred sessions at most)")
	flag.Int64Var(&opt.replayMiB, "replay-mib", 1024, "MiB in the replay fixture")
	flag.IntVar(&opt.replays, "replays", 5, "time-to-first-frame runs")
	flag.DurationVar(&opt.pgTime, "pg-time", 8*time.Second, "pgbench duration per run")
	flag.IntVar(&opt.pgClients, "pg-clients", 4, "pgbench clients (-c)")
	flag.DurationVar(&opt.sqlTime, "sql-time", 3*time.Second, "SQL API (POST /v1/sql) measurement per round and side")
	flag.StringVar(&opt.only, "only", "", "run only these workloads (comma-separated: "+strings.Join(workloadNames, ",")+")")
	flag.BoolVar(&opt.inProcess, "inprocess", false, "run the bastion inside this process (to profile it with -cpuprofile); CPU figures then include the harness")
	flag.StringVar(&opt.cpuProfile, "cpuprofile", "", "write a CPU profile of this process to the file")
	flag.StringVar(&opt.memProfile, "memprofile", "", "with -inprocess: write a heap profile while the idle sessions are open")
	flag.BoolVar(&opt.diagnose, "diagnose", true, "also run the shell-output workload without storing content and without masking, and pgbench through the bastion relaying bytes to a tcp target, to attribute their cost")
	flag.BoolVar(&opt.keep, "keep", false, "keep the scratch directory (logs, configs)")
	flag.Parse()
	opt.bytes, opt.ingest = bytesMiB<<20, ingestMiB<<20
	if err := run(opt); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (o options) wants(name string) bool {
	if o.only == "" {
		return true
	}
	for _, n := range strings.Split(o.only, ",") {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

func run(opt options) error {
	if opt.rounds < 1 || opt.catRounds < 1 || opt.bytes <= 0 || opt.keys < 10 || opt.pgClients < 1 || opt.sessions < 1 || opt.replays < 1 || opt.busyRounds < 1 || opt.busyTime <= 0 {
		return fmt.Errorf("rounds, sizes and counts must be positive (keys at least 10)")
	}
	for _, n := range strings.Split(opt.only, ",") {
		if n = strings.TrimSpace(n); n != "" && !contains(workloadNames, n) {
			return fmt.Errorf("unknown workload %q (have %s)", n, strings.Join(workloadNames, ", "))
		}
	}
	if opt.cpuProfile != "" {
		f, err := os.Create(opt.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	started := time.Now()
	m := describeMachine()
	logf("setting up")
	e, err := newEnv(opt)
	if err != nil {
		return err
	}
	defer e.cleanup()
	// An interrupt still cleans up: sshd, postgres and the bastion are our
	// children, and the scratch directory holds GiBs. Holding finishing, it
	// also keeps the half-run workloads from writing a report.
	var finishing sync.Mutex
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		finishing.Lock()
		logf("interrupted; cleaning up")
		e.cleanup()
		os.Exit(130)
	}()

	rows := map[string][]result{}
	if opt.wants("pgbench") || opt.wants("sqlapi") || opt.wants("ingest") || opt.wants("issue") {
		if err := e.setupPostgres(); err != nil && err != errPending {
			logf("postgres setup: %v", err)
			e.pgErr = err
		}
	}
	runOne := func(name string) {
		logf("workload %s", name)
		t0 := time.Now()
		var r result
		var extra []result // rows after r
		switch name {
		case "forward":
			r = e.benchForward()
		case "cat":
			r = e.benchCat()
		case "pgbench":
			r = e.benchPgbench()
		case "sqlapi":
			r = e.benchSQLAPI()
		case "echo":
			r = e.benchEcho()
		case "enter":
			r = e.benchEnter()
		case "busy":
			r = e.benchBusy()
		case "issue":
			r = e.benchIssue(true)
		case "ingest":
			rs := e.benchIngest()
			r, extra = rs[0], rs[1:]
		case "idle":
			r = e.benchIdle()
		case "replay":
			r = e.benchReplay()
		case "webreplay":
			r = e.benchWebReplay()
		}
		logf("workload %s done in %s: %s", name, time.Since(t0).Round(100*time.Millisecond), r.Mark)
		rows[name] = append(rows[name], r)
		rows[name] = append(rows[name], extra...)
		if name == "issue" && r.Mark != markError && e.opt.issueVariants {
			rows[name] = append(rows[name], e.issueHSM(r))
			if e.pg != nil {
				rows[name] = append(rows[name], e.issuePG(r))
			}
		}
		if name == "forward" && r.Mark != markError {
			rows[name] = append(rows[name], e.benchForwardMetadata())
		}
		if name == "cat" && r.Mark != markError {
			rows[name] = append(rows[name], e.benchStored())
		}
		if name == "webreplay" && r.Mark != markError {
			rows[name] = append(rows[name], e.benchWebSeek())
		}
		if name == "pgbench" && r.Mark != markError && e.pg != nil {
			rows[name] = append(rows[name], e.benchPgbenchListener())
		}
		if name == "cat" && opt.diagnose && r.Mark != markError {
			rows[name] = append(rows[name], e.diagnoseCat()...)
		}
	}
	if opt.wants("idle") {
		if err := e.startBastion(); err != nil {
			return err
		}
		runOne("idle")
		e.bastion.stop()
	}
	if opt.wants("replay") || opt.wants("webreplay") {
		logf("writing the %d MiB replay fixture", opt.replayMiB)
		if err := e.writeReplayFixture(); err != nil {
			return err
		}
	}
	if err := e.startBastion(); err != nil {
		return err
	}
	logf("bastion %s (pid %d), target sshd %s, jump sshd %s", e.bastion.sshAddr, e.bastion.pid, e.target.Addr, e.jump.Addr)
	for _, name := range runOrder {
		if opt.wants(name) {
			runOne(name)
		}
	}
	var ordered []result
	for _, name := range workloadNames {
		ordered = append(ordered, rows[name]...)
	}
	finishing.Lock()
	defer finishing.Unlock()
	elapsed := time.Since(started)
	rep := report(m, e, ordered, elapsed)
	fmt.Println(rep)
	if opt.out != "" {
		if err := os.WriteFile(opt.out, []byte(rep), 0o644); err != nil {
			return err
		}
		logf("wrote %s", opt.out)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
