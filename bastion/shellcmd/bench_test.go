package shellcmd

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

func BenchmarkAnalyzeTypical(b *testing.B) {
	src := `sudo -u root systemctl restart nginx && journalctl -u nginx --since "5 min ago" | tail -n 20`
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Analyze(src); err != nil {
			b.Fatal(err)
		}
	}
}

// simpleLines are ordinary commands: pipes, options, quotes, lists.
var simpleLines = []string{
	`ls -la /var/log && grep -i "error" /var/log/syslog | tail -n 50`,
	`sudo systemctl status nginx --no-pager; echo "exit=$?"`,
	`bash -c 'cd /srv/app && git pull --ff-only' > /tmp/pull.log 2>&1`,
	`tar -czf /backup/www.tar.gz -C /var www && ls -l /backup`,
	`echo "deploying $VERSION" | tee -a /var/log/deploy.log`,
}

// scriptLines add loops, substitutions and braces.
var scriptLines = append([]string{
	`for f in /etc/*.conf; do wc -l "$f"; done`,
	`find /tmp -name '*.tmp' -mtime +7 -exec rm -f {} \;`,
	`X=$(date +%s) env LANG=C sort -u data.txt | head`,
	`ps aux | grep -v grep | awk '{print $2}'`,
}, simpleLines...)

// repeatLines repeats lines up to about n bytes.
func repeatLines(lines []string, n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n-128; i++ {
		b.WriteString(lines[i%len(lines)])
		b.WriteByte('\n')
	}
	return b.String()
}

// benignMegabyte is a megabyte of ordinary commands.
func benignMegabyte() string { return repeatLines(simpleLines, MaxInputBytes) }

// BenchmarkAnalyzeMegabyte analyses a megabyte of ordinary commands and of
// each hostile input; ns/op divided by the size shows the cost per byte
// stays flat (linear time).
func BenchmarkAnalyzeMegabyte(b *testing.B) {
	inputs := hostile(MaxInputBytes - 16)
	inputs["benign"] = benignMegabyte()
	names := make([]string, 0, len(inputs))
	for n := range inputs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		src := inputs[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Analyze(src)
			}
		})
	}
}

// BenchmarkAnalyzeScaling analyses ordinary commands and scripts at
// growing sizes: the time per byte must not grow with the size.
func BenchmarkAnalyzeScaling(b *testing.B) {
	for _, size := range []int{16 << 10, 128 << 10, 1 << 20} {
		for _, kind := range []string{"simple", "script"} {
			lines := simpleLines
			if kind == "script" {
				if size > 128<<10 {
					continue // past what sh -c accepts, and past the complexity budget
				}
				lines = scriptLines
			}
			src := repeatLines(lines, size)
			b.Run(fmt.Sprintf("%s/%dKiB", kind, size>>10), func(b *testing.B) {
				b.SetBytes(int64(len(src)))
				for b.Loop() {
					if _, err := Analyze(src); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkPatternMatch(b *testing.B) {
	p, err := CompilePattern("rm -rf *")
	if err != nil {
		b.Fatal(err)
	}
	a, err := Analyze("sudo rm --recursive --force /tmp/a /tmp/b /tmp/c")
	if err != nil {
		b.Fatal(err)
	}
	c := a.Commands[len(a.Commands)-1]
	b.ReportAllocs()
	for b.Loop() {
		if !p.Match(c) {
			b.Fatal("no match")
		}
	}
}
