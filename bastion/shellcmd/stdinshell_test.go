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
		// Other names for stdin or the terminal, and paths whose
		// directory is not known here.
		{"bash 3<&0 /dev/fd/3", true},
		{"bash /dev/./stdin", true},
		{"bash //proc/self/fd/0", true},
		{"bash /dev/fd/../fd/0", true},
		{"bash /proc/$$/fd/0", true},
		{"bash /proc/thread-self/fd/0", true},
		{"bash /proc/self/root/dev/stdin", true},
		{"bash /dev/tty", true},
		{"sh /dev/pts/0", true},
		{"cd /dev && bash stdin", true},
		{"cd /proc/self/fd && bash 0", true},
		{"source /dev/fd/3 3<&0", true},
		{"bash < /dev/./stdin", true},
		// A start-up file read from the input.
		{"BASH_ENV=/dev/stdin bash -c true", true},
		{"export BASH_ENV=/dev/fd/0; bash -c true", true},
		{"env ENV=/dev/stdin sh -i -c true", true},
		{"bash --rcfile /dev/stdin -i x.sh", true},

		{"bash -c 'ls'", false},
		{"bash script.sh", false},
		{"bash ./deploy/run.sh", false},
		{"bash /opt/app/run.sh", false},
		{`bash "$HOME/deploy.sh"`, false},
		{"bash /dev/shm/x.sh", false},
		{"bash tty-setup.sh", false},
		{"BASH_ENV=~/.bashenv bash -c true", false},
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
