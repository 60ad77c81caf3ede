// Package shellcmd judges shell commands on their parsed structure: it
// parses a command line as bash (with mvdan.cc/sh/v3/syntax, never with
// regular expressions over the raw text), finds every simple command that
// can run, normalises each one to a plain argv, and matches argv patterns
// such as "rm -rf *" against them.
//
// # Basics
//
// [Analyze] returns an [Analysis]: the [Command]s that can run, the
// [Unknowable] constructs, and whether the text is [Analysis.Incomplete].
// It follows commands wherever the shell would run them:
//
//	ls; rm -rf /tmp/victim              lists, &&, ||, pipelines
//	(cd /; rm -rf x) { rm x; }          subshells and blocks
//	if rm x; then ...; fi               if/while/until/for/case bodies
//	f() { rm x; }                       function bodies
//	echo $(rm x) <(rm y) >(rm z)        command and process substitutions
//	a[$(rm x)]=1  $((1+$(rm x)))        substitutions in assignments and arithmetic
//	bash -c 'rm x'  sh -ec 'rm x'       -c strings (sh, bash, dash, zsh, ksh, fish, ...)
//	eval "rm x"  su -c 'rm x'           eval, su/runuser -c, sg, flock -c, script -c
//	bash <<'EOF' ... EOF                here-documents and here-strings fed to a shell
//	watch 'rm x'  ssh host rm x         watch, remote commands given to ssh
//	alias ls='rm x'  trap 'rm x' EXIT   alias values, trap actions
//	PROMPT_COMMAND='rm x'  PS1='$(rm x)'  prompt code
//	BASH_ENV='$(rm x)'  MAILPATH='m?$(rm x)'  strings bash expands later
//	find / -exec rm {} \;               find -exec/-execdir/-ok/-okdir
//
// Code inside a string is parsed again, to at most [MaxDepth] levels.
//
// # Normalisation
//
// Each word is normalised the way the shell would pass it: quotes and
// backslashes removed ("rm", 'rm', r\m, r""m are all rm), ANSI-C strings
// decoded ($'\x72\x6d' is rm), brace expansions expanded ({rm,-rf,x} is
// three words, at most [MaxBraceWords]), and a word split where an unquoted
// $IFS or ${IFS} stands (rm${IFS}-rf is two words). An expansion that only
// the running shell can perform is kept as its source text: rm -rf "$HOME/x"
// has the argument $HOME/x. [Command.Text] quotes the argv back into one
// line; Analyze(c.Text) yields c.Argv again.
//
// # Wrappers
//
// A wrapper is a command that runs another command given in its arguments.
// Each is peeled with its own option grammar, and both the wrapper and the
// command it runs are reported; the inner command lists the wrappers in
// [Command.Wrappers]:
//
//	sudo -u root -E rm -rf x    -> sudo ...; rm -rf x (Wrappers: sudo)
//	env -i X=1 nice -n5 timeout -s KILL 3 rm x
//	                            -> env ...; nice ...; timeout ...; rm x (env, nice, timeout)
//
// Peeled: sudo, doas, env (including -S), nice, timeout, nohup, stdbuf,
// time (the keyword and the program), command (not with -v/-V), builtin,
// exec, xargs, chroot DIR, ionice, setsid, unbuffer, watch (-x or a string),
// busybox/toybox APPLET, su/runuser, sg, flock, script -c, ssh, find -exec,
// gosu, su-exec, nsenter, unshare, taskset, chrt, strace, ltrace,
// systemd-run, fakeroot, proxychains, torsocks, pkexec, firejail, valgrind,
// catchsegv, eatmydata, nocache, each also by absolute path (/usr/bin/sudo).
// The command after xargs gets more arguments from its input; only the
// visible argv is reported. su, runuser, sudo -s/-i and doas -s start a
// shell, analysed like sh: its -c string, or the stdin it reads when given
// no command.
//
// # Unknowable
//
// A construct is [Unknowable] when what runs depends on data that exists
// only at run time. The caller decides (by a rule option) what to do; by
// default a bastion sends such a command to approval. Reported, with the
// Reason constants:
//
//	eval $x, eval "$(curl ..)"          ReasonEval
//	source "$f", . "$f"                 ReasonSource
//	$CMD x, ${x:-rm} x                  ReasonParamCommand
//	$(echo rm) x, `echo rm` x           ReasonSubstCommand
//	/???/r? x                           ReasonGlobCommand
//	base64 -d <<<.. | sh, | sudo bash -s, | sudo su -, tee >(sh),
//	| source /dev/stdin                 ReasonPipeShell
//	curl .. | python3                   ReasonPipeInterp
//	bash <<<"$x", sh <<EOF with $vars   ReasonShellStdin
//	bash <(curl ..), sh < <(curl ..)    ReasonProcSubstShell
//	bash -c "$x"                        ReasonShellString
//	sudo -u "$u" rm x, sudo $OPTS rm    ReasonWrapperArg
//	xargs sh -c, xargs -I{} sh -c '{}', xargs env
//	                                    ReasonXargsCommand
//	find -exec {} \;                    ReasonFindExec
//	alias x="$v", trap "$v" EXIT        ReasonAlias, ReasonTrap
//	alias s=sudo, alias s='true;', alias s='#'
//	                                    ReasonAliasWords (the words typed after
//	                                    s are not plain arguments of its value)
//	PS1="$v" (prompt code)              ReasonPrompt
//
// Limits are reported the same way: a -c string that does not parse
// (ReasonShellSyntax; the statements before the error are still reported),
// nesting deeper than MaxDepth (ReasonTooDeep), a brace expansion over
// MaxBraceWords (ReasonBraceLimit), nested text too complex to parse
// (ReasonTooComplex), the work budget spent (ReasonBudget), a syntax node
// this package does not know (ReasonUnsupported).
//
// A variable or substitution in an argument position is not unknowable:
// rm -rf "$HOME/x" is the command rm with the argument $HOME/x, and the
// command is marked [Command.Dynamic], as are commands that get more
// arguments at run time (after xargs, in an alias value), so that a caller
// can treat them more strictly.
//
// # Patterns
//
// [CompilePattern] compiles a rule's command pattern; [Pattern.Match]
// matches it against one Command. Semantics:
//
//   - Words are split like the shell: quotes group words and make glob
//     characters literal ('*' matches only an argument that is a star);
//     a pattern holds no expansions, substitutions or operators.
//   - The first word is a glob on [Command.Name] ("rm", "mkfs*"), or on the
//     full Argv[0] when it contains a slash ("/usr/bin/rm").
//   - A word starting with "-" (before a "--" word) is a required option.
//     Short-option clusters are split and options are a set on both sides:
//     "rm -rf *" matches rm -fr x, rm -r -f x, rm -f -r x, rm -rfv x and
//     rm x -rf. A command may have more options than the pattern. For
//     common dangerous commands (rm, cp, mv, chmod, chown, chgrp, ln, shred,
//     userdel, kill, systemctl) aliases are mapped: for rm, -R is -r,
//     --recursive is -r, --force is -f, and an unambiguous abbreviation
//     (--rec, --fo) counts as the full option, as GNU getopt does.
//     "--name=glob" requires the option with a matching value, attached or
//     as the next word.
//   - Every other word is a path.Match glob on the corresponding operand
//     (a non-option argument), in order. A word that is exactly "*"
//     matches any one argument, even one containing "/".
//   - A final unquoted "*" word matches any remaining operands, zero or
//     more. Without it the command must have exactly as many operands as
//     the pattern: "shutdown" matches shutdown and shutdown -h, but not
//     shutdown now; "shutdown *" matches every shutdown.
//   - After "--" in the command, every word is an operand. A word after an
//     option that may take a value (any option of a command without a
//     table above) may be either that value or an operand; the pattern
//     matches if either reading matches.
//
// Examples:
//
//	"rm -rf *"               rm -rf /tmp/x, rm -Rf a b, rm --recursive --force x, sudo rm -fr x
//	"rm -r /"                rm -rf /, rm -r / (not rm -r /tmp)
//	"systemctl restart *"    systemctl restart nginx, systemctl --no-block restart a b
//	"chmod -R 777 *"         chmod -R 777 /srv, chmod --recursive 777 /srv /var
//	"git push --force *"     git push --force origin main, git push origin --force (not git push -f:
//	                         git has no alias table, so -f and --force differ)
//	"kill -9 *"              kill -9 1 (not kill -KILL 1: a different spelling)
//	"/usr/bin/rm *"          only rm run by that path
//	"mkfs* *"                mkfs.ext4 /dev/sda1
//
// # Concurrency
//
// Analyze may be called from many goroutines at once. A compiled Pattern is
// immutable and safe for concurrent use.
//
// # Caveats
//
// This is a guard over what is written, not a sandbox. Not caught:
//
//   - a script file run by name (bash ./x.sh, ./x.sh, source x.sh): its
//     content is not visible here; nor the content of a file a shell reads
//     with < file;
//   - programs that run code from their own arguments in a general-purpose
//     language: perl -e, python -c, ruby -e, node -e, php -r, lua -e (awk
//     programs that can start a process, vim -c commands that are not
//     plainly harmless, git settings that run commands and GNU parallel are
//     reported Unknowable); and programs that start a command but are not
//     among the wrappers and launchers this package knows (wrappers.go,
//     launchers.go, launchers2.go, containers.go, programs.go);
//   - what an alias, function or variable defined earlier in an interactive
//     session does (each line is analysed alone, so ls may be an alias);
//     PATH, IFS or an alias changed earlier can change what a name means;
//   - the value of an expansion in an argument may be an option or split
//     into several words (rm $f with f="-rf /", or f() { rm "$@"; }; f -rf
//     /), so patterns see $f as one operand: such commands are marked
//     [Command.Dynamic] for the caller to judge;
//   - bash arithmetic evaluates array subscripts in variables' values
//     ([[ $x -eq 1 ]] with x='a[$(rm y)]').
//
// Parsing uses the bash dialect of mvdan.cc/sh; zsh, fish and other shells'
// strings are parsed as bash, and text bash would parse differently (for
// example an alias expanding to a keyword) may be analysed differently.
// Some differences are read for: text a POSIX sh such as dash may run is
// also read as dash reads ((, &> and $' (posixReading); a fish -c string
// also with fish's single quotes; zsh's and fish's command words (=rm,
// noglob, repeat, and, or, not), zsh's $=x and glob qualifiers, and text
// bash continues but zsh or fish runs at once.
//
// Inputs are bounded: at most [MaxInputBytes]; and, because the parser is
// recursive and Go cannot survive a stack overflow, a text whose nesting
// could drive the parser's stack past 64 MiB is refused with
// [ErrTooComplex] before it is parsed. The check charges every byte that
// can open a nesting level without matching it to its closer, so it admits
// about 8000 nested parentheses, any realistic script of 128 KiB (the most
// Linux passes to sh -c) and a megabyte of simple commands, but may refuse
// a megabyte heavy in substitutions, braces or loops. Nested strings that
// are too complex, too deep or beyond the total work budget (four times the
// input, counting nested text parsed again and the text of every command
// reported) are reported as Unknowable. Analysis is linear in the input.
package shellcmd
