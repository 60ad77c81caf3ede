package shellcmd_test

import (
	"fmt"

	"github.com/bastionhq/bastion/bastion/shellcmd"
)

func ExampleAnalyze() {
	a, err := shellcmd.Analyze(`ls; sudo -u root bash -c 'r\m -rf /tmp/victim' && $(echo rm) x`)
	if err != nil {
		fmt.Println("refused:", err) // fail closed
		return
	}
	for _, c := range a.Commands {
		fmt.Printf("%s %q via %q\n", c.Name, c.Argv, c.Wrappers)
	}
	for _, u := range a.Unknowable {
		fmt.Printf("unknowable (%s): %s\n", u.Reason, u.Text)
	}
	// Output:
	// ls ["ls"] via []
	// sudo ["sudo" "-u" "root" "bash" "-c" "r\\m -rf /tmp/victim"] via []
	// bash ["bash" "-c" "r\\m -rf /tmp/victim"] via ["sudo"]
	// rm ["rm" "-rf" "/tmp/victim"] via ["sudo" "bash -c"]
	// echo ["echo" "rm"] via []
	// unknowable (command substitution in command position): $(echo rm) x
}

func ExampleAnalyze_incomplete() {
	a, _ := shellcmd.Analyze("for f in *.log; do")
	fmt.Println(a.Incomplete)
	// Output: true
}

func ExamplePattern_Match() {
	p, err := shellcmd.CompilePattern("rm -rf *")
	if err != nil {
		panic(err) // patterns come from the config: report and refuse to start
	}
	for _, line := range []string{"rm -fr /srv", "rm --recursive --force x", "rm -r x", "/bin/rm -Rf a b"} {
		a, _ := shellcmd.Analyze(line)
		fmt.Println(line, "=>", p.Match(a.Commands[0]))
	}
	// Output:
	// rm -fr /srv => true
	// rm --recursive --force x => true
	// rm -r x => false
	// /bin/rm -Rf a b => true
}
