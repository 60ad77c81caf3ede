package shellcmd

import "testing"

// TestStdinShell: a shell that reads its commands from the input the text
// is given is found through the shells' own options (an exec-only role is
// refused it: the session's input would run unjudged).
func TestStdinShell(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{"bash", true},
		{"sh", true},
		{"bash -o errexit", true},
		{"bash +o posix", true},
		{"bash -O extglob", true},
		{"bash -eo pipefail", true},
		{"bash --rcfile /dev/null", true},
		{"bash --init-file /dev/null", true},
		{"bash --noprofile --norc", true},
		{"bash /dev/stdin", true},
		{"sh /dev/fd/0", true},
		{"bash /proc/self/fd/0", true},
		{"bash -", true},
		{"bash -- ", true},
		{"bash -s arg", true},
		{"bash -s -- a b", true},
		{"bash < /dev/stdin", true},
		{"bash <&0", true},
		{". /dev/stdin", true},
		{"source /dev/stdin", true},
		{"source /dev/fd/0", true},
		{"sudo -i", true},
		{"sudo -s", true},
		{"sudo bash", true},
		{"sudo -u postgres bash -x", true},
		{"env -i bash", true},
		{"exec bash", true},
		{"nohup sh", true},
		{"busybox sh", true},
		{"su", true},
		{"su - root", true},
		{"doas -s", true},
		{"fish", true},
		{"ssh otherhost", true},
		{"bash -c 'bash'", true},
		{"true && bash", true},

		{"bash -c 'ls'", false},
		{"bash script.sh", false},
		{"bash -x script.sh", false},
		{"bash -o errexit script.sh", false},
		{"bash --rcfile /dev/null script.sh", false},
		{"bash < script.sh", false},
		{"bash <<< 'ls'", false},
		{"bash <<EOF\nls\nEOF", false},
		{"source ~/.bashrc", false},
		{"sudo -i ls", false},
		{"su -c ls", false},
		{"ssh otherhost ls", false},
		{"ssh -W db:5432 jump", false},
		{"ssh -N -L 1:a:2 jump", false},
		{"ls", false},
		{"python3", false},
		{"cat", false},
	} {
		a, err := Analyze(tc.src)
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		if a.StdinShell != tc.want {
			t.Errorf("%q: StdinShell %v, want %v", tc.src, a.StdinShell, tc.want)
		}
	}
}
