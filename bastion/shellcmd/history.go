package shellcmd

import (
	"slices"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// Reasons for constructs that change what the shell runs after the line
// was judged, or how the bastion reads the keys a user types.
const (
	// ReasonHistory: bash's history expansion (!!, !$, !prefix, ^old^new,
	// word designators and modifiers) or fc rewrites the line from the
	// shell's history after the bastion has judged it; or the command turns
	// history expansion on (set -H, set -o history, histchars=...).
	ReasonHistory = "history expansion rewrites the line after it is judged"
	// ReasonLineEditing: the command changes how the shell or the terminal
	// turns keys into lines (readline key bindings and macros, vi editing
	// mode, terminal modes such as -echo or a new end-of-line character),
	// so later lines could run without being read the way they are judged.
	ReasonLineEditing = "changes how typed keys become command lines"
	// ReasonKeyword: set -k (set -o keyword, bash -k) makes every word of
	// a command line that looks like an assignment set the command's
	// environment wherever it stands: `git fetch GIT_SSH_COMMAND=CMD`
	// then runs CMD, which the line's words do not show as a command.
	ReasonKeyword = "set -k makes assignments anywhere on a line set the command's environment"
)

// Options change how AnalyzeWith reads the text.
type Options struct {
	// Interactive: the text was typed at an interactive bash, where history
	// expansion is on. A line that bash would rewrite from its history
	// (see [HistoryExpansion]) is reported as [ReasonHistory].
	Interactive bool
}

// AnalyzeWith is Analyze with options.
func AnalyzeWith(src string, opt Options) (*Analysis, error) {
	a, err := analyze(src)
	if err != nil || a.Incomplete || !opt.Interactive {
		return a, err
	}
	if at, ok := HistoryExpansion(src); ok {
		a.Unknowable = append(a.Unknowable, Unknowable{Text: clip(at), Reason: ReasonHistory})
	}
	// A # starts a comment at a prompt only where interactive comments are
	// on: bash after `shopt -u interactive_comments`, and zsh by default,
	// read `true #; rm -rf /srv` as true with an argument, then rm.
	if nc, ok := uncommented(src); ok {
		b, err := analyze(nc)
		if err != nil || b.Incomplete {
			// Such a shell fails on the line, or waits for more of it
			// and runs it with the next one.
			a.Unknowable = append(a.Unknowable, Unknowable{Text: clip(src), Reason: ReasonComment})
		} else {
			a.Commands = append(a.Commands, b.Commands...)
			a.Unknowable = append(a.Unknowable, b.Unknowable...)
		}
	}
	return a, nil
}

// ReasonComment: a line whose comment, read as words (interactive comments
// off), does not parse or leaves the line unfinished.
const ReasonComment = "a comment that a shell without interactive comments reads as words, which do not make a whole command"

// uncommented returns src with the # of each comment escaped, as a shell
// without interactive comments reads it, and whether src has a comment.
func uncommented(src string) (string, bool) {
	if !strings.Contains(src, "#") {
		return "", false
	}
	f, err := parse(src)
	if err != nil {
		return "", false
	}
	var at []int
	syntax.Walk(f, func(n syntax.Node) bool {
		if c, ok := n.(*syntax.Comment); ok {
			at = append(at, int(c.Hash.Offset()))
		}
		return true
	})
	if len(at) == 0 {
		return "", false
	}
	slices.Sort(at)
	var b strings.Builder
	last := 0
	for _, i := range at {
		if i < last || i >= len(src) || src[i] != '#' {
			continue
		}
		b.WriteString(src[last:i])
		b.WriteString("\\#")
		last = i + 1
	}
	b.WriteString(src[last:])
	return b.String(), true
}

func clip(text string) string {
	if len(text) <= maxUnknowableText {
		return text
	}
	cut := maxUnknowableText
	for cut > 0 && !isRuneStart(text[cut]) {
		cut--
	}
	return text[:cut] + "..."
}

// HistoryExpansion reports whether interactive bash, with its default
// history characters (!, ^ and #), would perform history expansion on any
// line of src, and returns that line. It follows the scan of readline's
// history_expand and bash's exceptions: single quotes and a backslash
// protect a !, and a ! followed by a blank, a newline, =, or (inside double
// quotes) the closing quote is literal, as are $!, ${!name} and [!...]. A
// line starting with ^ is a quick substitution. Where bash's own rules are
// finer than these (it skips some command substitutions), this reports an
// expansion: the caller then asks for a human instead of guessing.
//
// Each line is scanned on its own, as bash expands each line it reads
// before parsing it, even inside a quoted string that spans lines.
func HistoryExpansion(src string) (string, bool) {
	for _, line := range strings.Split(src, "\n") {
		if lineExpands(line) {
			return line, true
		}
	}
	return "", false
}

func lineExpands(s string) bool {
	if strings.HasPrefix(strings.TrimLeft(s, " \t"), "^") {
		return true
	}
	dquote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		var cc byte
		if i+1 < len(s) {
			cc = s[i+1]
		}
		switch {
		case c == '#' && !dquote && (i == 0 || isHistWordDelim(s[i-1])):
			return false // a comment: bash expands nothing after it
		case c == '!':
			switch {
			case cc == 0 || cc == ' ' || cc == '\t' || cc == '\r' || cc == '=':
				continue
			case dquote && cc == '"':
				continue
			case i > 0 && s[i-1] == '$':
				continue // $!
			case i > 1 && s[i-1] == '{' && s[i-2] == '$' && strings.IndexByte(s[i+1:], '}') >= 0:
				continue // ${!name}
			case i > 0 && s[i-1] == '[' && strings.IndexByte(s[i+1:], ']') >= 0:
				continue // [!...] in a pattern
			}
			return true
		case dquote && c == '\\' && cc == '"':
			i++
		case c == '"':
			dquote = !dquote
		case !dquote && c == '\'':
			// Single quotes protect everything up to the closing one; in
			// $'...' a backslash escapes the quote.
			ansi := i > 0 && s[i-1] == '$'
			j := i + 1
			for ; j < len(s) && s[j] != '\''; j++ {
				if ansi && s[j] == '\\' {
					j++
				}
			}
			i = j
		case c == '\\':
			if cc == '\'' || cc == '!' {
				i++
			}
		}
	}
	return false
}

// isHistWordDelim is readline's history_word_delimiters.
func isHistWordDelim(b byte) bool {
	return strings.IndexByte(" \t\n;&()|<>", b) >= 0
}

// historyOrEditing reports commands that rewrite lines from the history
// (fc), turn history expansion on for the commands after them (set -H,
// set -o history, shopt -o, bash -H), or change how keys become lines
// (bind, set -o vi, stty modes). Those after them cannot be judged as
// typed, so the command itself is unknowable. It returns the reason, or
// "" for a command that is none of these.
func historyOrEditing(name string, args []word) string {
	lit := func(w word) bool { return w.lit }
	switch name {
	case "r", "hist":
		// zsh's and ksh's r (fc -e -) re-runs the last command, with
		// r old=new substituted; ksh93's hist is its fc.
		return ReasonHistory
	case "fc":
		// fc -l lists; anything else re-runs or edits history entries.
		for _, w := range args {
			if !lit(w) {
				return ReasonHistory
			}
			if w.s == "--" || !strings.HasPrefix(w.s, "-") {
				break
			}
			if strings.ContainsRune(w.s[1:], 'l') {
				return ""
			}
		}
		return ReasonHistory
	case "set":
		for _, w := range args {
			// fish's set fish_key_bindings: its bind -M vi modes.
			if w.lit && w.s == "fish_key_bindings" {
				return ReasonLineEditing
			}
		}
		return setOptions(args, false)
	case "setopt", "unsetopt":
		// zsh's options ignore case and underscores, and take "no" to
		// turn them off: vi is bindkey -v either way.
		for _, w := range args {
			if !lit(w) {
				return ReasonLineEditing
			}
			o := strings.ToLower(strings.ReplaceAll(w.s, "_", ""))
			if strings.TrimPrefix(o, "no") == "vi" {
				return ReasonLineEditing
			}
		}
	case "fish_vi_key_bindings", "fish_hybrid_key_bindings":
		return ReasonLineEditing
	case "tset", "reset":
		// -e, -i, -k set the erase, interrupt and kill characters, as
		// stty erase, intr and kill do.
		for _, w := range args {
			if !lit(w) {
				return ReasonLineEditing
			}
			if len(w.s) >= 2 && w.s[0] == '-' && strings.ContainsAny(w.s[1:], "eik") {
				return ReasonLineEditing
			}
		}
	case "shopt":
		oflag := false
		for _, w := range args {
			if !lit(w) {
				return ReasonHistory
			}
			if strings.HasPrefix(w.s, "-") && strings.ContainsRune(w.s, 'o') {
				oflag = true
			}
		}
		if !oflag {
			return ""
		}
		for _, w := range args {
			if r := shellOption(w.s); r != "" {
				return r
			}
		}
	case "bind":
		for i := 0; i < len(args); i++ {
			w := args[i]
			if !lit(w) {
				return ReasonLineEditing
			}
			switch w.s {
			case "-l", "-p", "-P", "-s", "-S", "-v", "-V", "-X":
				continue
			case "-q", "-m":
				i++ // query a function / select a keymap
				continue
			}
			return ReasonLineEditing
		}
	case "bindkey":
		// zsh's bind: bindkey -s KEY STRING types STRING (a line and its
		// Enter) on KEY, bindkey KEY WIDGET rebinds it, -v is vi mode.
		// Listing (no operands, -l, -L) and showing one key pass.
		ops := 0
		for _, w := range args {
			if !lit(w) {
				return ReasonLineEditing
			}
			switch {
			case w.s == "-l" || w.s == "-L" || w.s == "-lL" || w.s == "-Ll":
			case strings.HasPrefix(w.s, "-"):
				return ReasonLineEditing
			default:
				ops++
			}
		}
		if ops > 1 {
			return ReasonLineEditing
		}
	case "complete":
		// complete -F f / -C cmd: Tab runs f or cmd, whose answer replaces
		// the word being completed (-I: the command's name) and may come
		// seconds later, after output that made the guard read the line:
		// what Enter runs is then not what was judged.
		r := scanOpts(args, optSpec{valued: "oAGWFCXPS"})
		if r.bad || len(r.values("F")) > 0 || len(r.values("C")) > 0 {
			return ReasonLineEditing
		}
		for _, w := range args {
			if !lit(w) {
				return ReasonLineEditing
			}
		}
	case "zle":
		// zsh's widgets: zle -N defines one from a function, zle -U
		// pushes text to be read as typed; zle -l lists them.
		for _, w := range args {
			if !lit(w) || w.s != "-l" && w.s != "-la" && w.s != "-lL" {
				return ReasonLineEditing
			}
		}
	case "stty":
		for i := 0; i < len(args); i++ {
			w := args[i]
			if !lit(w) {
				return ReasonLineEditing
			}
			switch w.s {
			case "-a", "--all", "-g", "--save", "size", "speed", "sane", "echo", "icanon", "isig", "icrnl", "onlcr", "opost", "echoe", "echok", "echoctl", "echoke", "ixon", "-ixon", "ixany", "-ixany":
				continue
			case "rows", "cols", "columns":
				// The shell wraps its line at the width the tty says,
				// and the bastion's screen reader at the window's.
				return ReasonTerminal
			}
			return ReasonLineEditing
		}
	}
	return ""
}

// setOptions judges the option words of set (or of a shell started with
// them): -H and the named options histexpand and history turn history
// expansion on, -o vi changes the line editor.
func setOptions(args []word, shell bool) string {
	for i := 0; i < len(args); i++ {
		w := args[i]
		if !w.lit {
			if shell {
				return ""
			}
			return ReasonHistory
		}
		s := w.s
		if s == "--" || s == "-" || len(s) < 2 || s[0] != '-' && s[0] != '+' {
			if shell || s == "--" || s == "-" {
				return ""
			}
			continue
		}
		if strings.HasPrefix(s, "--") {
			continue
		}
		for k := 1; k < len(s); k++ {
			switch s[k] {
			case 'H':
				if s[0] == '-' {
					return ReasonHistory
				}
			case 'k':
				if s[0] == '-' {
					return ReasonKeyword
				}
			case 'o', 'O':
				if i+1 < len(args) {
					if !args[i+1].lit {
						return ReasonHistory
					}
					if r := shellOption(args[i+1].s); r != "" && s[0] == '-' {
						return r
					}
					i++
				}
			}
		}
	}
	return ""
}

func shellOption(name string) string {
	switch name {
	case "histexpand", "history":
		return ReasonHistory
	case "vi":
		return ReasonLineEditing
	case "keyword":
		return ReasonKeyword
	}
	return ""
}

// specialVarReason reports variables whose assignment changes how later
// lines are read: histchars (the history characters), SHELLOPTS and
// BASHOPTS (options a new bash starts with), INPUTRC (its key bindings).
func specialVarReason(name string) string {
	switch name {
	case "histchars", "SHELLOPTS", "BASHOPTS":
		return ReasonHistory
	case "INPUTRC":
		return ReasonLineEditing
	case "BASH_ALIASES", "BASH_CMDS":
		return ReasonRebind
	}
	return ""
}

// ScreenTerms are the terminal types whose drawing a terminal emulator
// that reads xterm's sequences follows, all of them in every
// distribution's base terminfo (ncurses-base). Under another type readline
// draws the line with other sequences (vt52 moves the cursor left with ESC
// D, a line feed to xterm) or scrolls a long line sideways (dumb, or a type
// without terminfo), so the screen no longer shows the line bash runs.
var ScreenTerms = map[string]bool{
	"xterm": true, "xterm-256color": true, "xterm-color": true,
	"screen": true, "screen-256color": true, "tmux": true, "tmux-256color": true,
	"linux": true, "vt100": true, "vt102": true, "vt220": true,
	"rxvt": true, "rxvt-unicode": true, "rxvt-unicode-256color": true, "ansi": true,
}

// termVar reports the variables that choose the terminal description
// readline draws with: bash re-reads it when one of them is assigned or
// unset.
func termVar(name string) bool {
	switch name {
	case "TERM", "TERMCAP", "TERMINFO", "TERMINFO_DIRS":
		return true
	}
	return false
}

// termAssignReason reports an assignment of value to name that changes how
// the shell draws its line: TERM set to a type not in ScreenTerms (or to a
// value only known at run time), or TERMCAP, TERMINFO or TERMINFO_DIRS set
// at all.
func termAssignReason(name, value string, lit bool) string {
	if !termVar(name) || name == "TERM" && lit && ScreenTerms[value] {
		return ""
	}
	return ReasonTerminal
}

// sizeAssign reports the shell's own COLUMNS or LINES set (COLUMNS=20,
// export COLUMNS=20; not a prefix assignment, which only the command sees):
// bash's line editor then wraps the line at that width, not the window's,
// which the guard's screen reader models, so the screen no longer shows the
// line bash runs.
func (a *analyzer) sizeAssign(assigns []*syntax.Assign, sc scope) {
	for _, as := range assigns {
		if as != nil && as.Name != nil && (as.Name.Value == "COLUMNS" || as.Name.Value == "LINES") && !as.Naked {
			a.unknowable(nodeText(sc.src, as), ReasonTerminal)
		}
	}
}

// ReasonTerminal: an assignment that changes the terminal description the
// shell draws its line with, or a command that changes the width it wraps
// the line at (stty cols).
const ReasonTerminal = "changes the terminal (its type or size) the shell draws its line for"

// ReasonRebind: a builtin or variable that makes a command name run
// something else (hash -p, BASH_CMDS, BASH_ALIASES, enable -f), or a
// nameref, through which an assignment reaches a variable not named in it.
const ReasonRebind = "changes what a name refers to"

// promptVar reports variables whose value the shell runs as code: the
// prompts, and the strings bash expands like them (with command
// substitution) at a later time: BASH_ENV and ENV when a shell starts
// (bash -c, a script, sh -i), MAILPATH's messages when mail arrives.
func promptVar(name string) bool {
	switch name {
	case "PROMPT_COMMAND", "PS0", "PS1", "PS2", "PS3", "PS4", "BASH_ENV", "ENV", "MAILPATH":
		return true
	}
	return false
}

// followedVar reports variables whose assignment the analysis follows
// (prompt code) or refuses to judge (specialVarReason): a builtin that
// assigns by name (read, printf -v, mapfile) to one of them, or to a name
// only known at run time, is unknowable.
func followedVar(w word) bool {
	if !w.lit {
		return true
	}
	name, _, _ := strings.Cut(w.s, "[")
	return promptVar(name) || specialVarReason(name) != "" || termVar(name)
}

// ReasonSubscript: a builtin that takes a variable name evaluates an array
// subscript in it as arithmetic, running any command substitution there
// (printf -v 'a[$(cmd)]' x, read 'a[`cmd`]', unset, test -v, let).
const ReasonSubscript = "array subscript evaluated as code"

// ReasonStoredSubscript: a literal value holding an array subscript with
// a substitution in it (x='a[$(cmd)]'). bash evaluates such a subscript,
// substitutions included, whenever the variable is used in arithmetic:
// $((x)), ((x)), [[ $x -eq 0 ]], an assignment to a declare -i variable.
// The use may come on any later line, so the value is reported where it is
// stored.
const ReasonStoredSubscript = "value runs an array subscript's substitution when used in arithmetic"

// storedSubscriptCode reports whether s, stored in a variable, holds a
// name followed by a subscript in which a command or parameter
// substitution starts: what arithmetic evaluation of the variable runs.
func storedSubscriptCode(s string) bool {
	for i := 1; i < len(s); i++ {
		if s[i] != '[' || !isNameByte(s[i-1]) {
			continue
		}
		rest := s[i+1:]
		if strings.Contains(rest, "$(") || strings.Contains(rest, "`") || strings.Contains(rest, "${") {
			return true
		}
	}
	return false
}

// ArithmeticCode reports whether a variable holding s would run a command
// when the shell uses it in arithmetic ($((x)), ((x)), [[ $x -eq 0 ]]):
// s holds an array subscript with a substitution in it, x='a[$(cmd)]'. A
// value that reaches a shell from outside the text it is given (an SSH env
// request) must not be such a value, since no rule sees the use as code.
func ArithmeticCode(s string) bool { return storedSubscriptCode(s) }

func isNameByte(b byte) bool {
	return b == '_' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}

// nameTakers are builtins whose arguments name variables (or hold
// arithmetic): a subscript in them is evaluated.
var nameTakers = map[string]bool{
	"printf": true, "read": true, "unset": true, "test": true, "[": true, "let": true,
	"getopts": true, "mapfile": true, "readarray": true, "wait": true, "declare": true,
	"typeset": true, "local": true, "export": true, "readonly": true, "shift": true,
	"return": true, "exit": true, "kill": true, "ulimit": true, "printf -v": true,
}

// builtinCode analyses code that bash builtins run from their arguments
// beyond eval, trap and alias: mapfile/readarray -C callbacks and
// complete/compgen -C commands and -W word lists (expanded when the user
// completes), and subscripts evaluated in variable names.
func (a *analyzer) builtinCode(name string, args []word, st *peelState) {
	if nameTakers[name] {
		for _, w := range args {
			if w.lit && strings.Contains(w.s, "[") && (strings.Contains(w.s, "$(") || strings.Contains(w.s, "`") || strings.Contains(w.s, "${")) {
				a.unknowable(st.text, ReasonSubscript)
				break
			}
		}
	}
	code := func(w word, label string) {
		if !w.lit {
			a.unknowable(st.text, ReasonShellString)
			return
		}
		a.nested(w.s, st.sc.depth, appendWrapper(st.wrappers, label), false, st.text)
	}
	assigns := func(names []word) {
		for _, w := range names {
			if followedVar(w) {
				a.unknowable(st.text, ReasonPrompt)
				return
			}
			// read GIT_SSH_COMMAND, printf -v PAGER: a value not in
			// the text, for a variable whose value a program runs.
			if name, _, _ := strings.Cut(w.s, "["); commandVars[name] || codeSettingVar(name, word{}) {
				a.unknowable(st.text, ReasonCodeSetting)
				return
			}
		}
	}
	switch name {
	case "mapfile", "readarray":
		r := scanOpts(args, optSpec{valued: "dnOsuCc"})
		for _, v := range r.values("C") {
			code(v, name+" -C")
		}
		assigns(args[r.next:min(r.next+1, len(args))])
	case "read":
		r := scanOpts(args, optSpec{valued: "adinNptu"})
		assigns(append(r.values("a"), args[r.next:]...))
	case "printf":
		r := scanOpts(args, optSpec{valued: "v"})
		assigns(r.values("v"))
	case "getopts":
		if len(args) > 1 {
			assigns(args[1:2])
		}
	case "unset":
		// unset TERM has readline draw for a dumb terminal.
		for _, w := range args {
			if !w.lit || termVar(w.s) {
				a.unknowable(st.text, ReasonTerminal)
				break
			}
		}
	case "hash":
		if r := scanOpts(args, optSpec{valued: "pt"}); r.hasFlag('p') || r.bad {
			a.unknowable(st.text, ReasonRebind)
		}
	case "enable":
		if r := scanOpts(args, optSpec{valued: "f"}); r.hasFlag('f') || r.bad {
			a.unknowable(st.text, ReasonRebind)
		}
	case "complete", "compgen":
		r := scanOpts(args, optSpec{valued: "oAGWFCXPS"})
		for _, v := range r.values("C") {
			code(v, name+" -C")
		}
		for _, v := range r.values("W") {
			if !v.lit || strings.ContainsAny(v.s, "$`") {
				a.unknowable(st.text, ReasonShellString)
			}
		}
	}
}
