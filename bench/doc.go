// Command bench runs bastion side by side with OpenSSH and writes the
// figures as a Markdown report (docs/BENCHMARKS.md). `make bench` runs it.
//
// # Basics
//
// The harness starts the real components on loopback, in a scratch
// directory it removes at the end: the bastion as its own process
// (`bastion serve`, built once; -bastion names the binary) with strict
// recording and a card-number masking rule; OpenSSH sshd as the target,
// trusting only the bastion's target CA; a second sshd with plain key
// authentication as the baseline jump host and -L server; the development
// OIDC provider (internal/devidp); and, once the bastion links the
// PostgreSQL proxy, PostgreSQL 15 (sshd and PostgreSQL are started by
// internal/localsvc). Each side-by-side workload runs on both paths in
// alternation for several rounds, with the real OpenSSH client, and the
// table reports both figures, the ratio
// (median and spread of the per-round ratios) and the CPU each serving
// side used per GiB or per thousand transactions. The absolute goals
// (issuance, ingest, idle memory, replay in the terminal and in the web
// console, the latter in headless Chromium) are measured on the bastion
// alone.
// The busy row opens as many terminal sessions as the idle row, each
// printing a log line every 200 ms, and reports the bastion's CPU, its
// recorder's commit times and the lines delivered, and keystroke echo
// beside them against the same echo with them closed; no goal.
// Goals are printed with a pass or MISS mark, never asserted.
//
// CPU is read from /proc: the bastion's own utime and stime, and for
// OpenSSH the sshd listener's child times once it has reaped the
// connection's processes. Memory per idle session is the growth of the
// bastion's VmRSS, with its Go runtime gauges from /metrics beside it.
//
// # Profiling
//
// -inprocess runs the bastion inside the harness through internal/app, so
// -cpuprofile and -memprofile (heap, with the idle sessions open) profile
// it; CPU figures then include the harness. -diagnose (on by default)
// repeats the shell-output workload without storing content and without
// masking, and runs pgbench through the bastion relaying bytes to a tcp
// target in front of the same server (the floor of its own relay), which
// attribute those workloads' costs; -only selects workloads.
//
// # Caveats
//
// The machine is shared: absolute figures move with its load, ratios much
// less. Nothing here is a test; the unit tests cover the parsers of /proc
// and /metrics text and the statistics.
package main
