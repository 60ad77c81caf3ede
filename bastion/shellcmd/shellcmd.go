package shellcmd

import (
	"errors"
	"fmt"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// Limits of the analysis. They bound time and memory on hostile input; a
// command line that a person or a CI job really runs stays far below them.
const (
	// MaxInputBytes is the longest text Analyze accepts. Linux cannot pass
	// a longer single argument to `sh -c` (MAX_ARG_STRLEN is 128 KiB), so
	// no exec command that a target could run is refused by it.
	MaxInputBytes = 1 << 20

	// MaxDepth is how many strings deep Analyze follows code that is
	// written inside another command's argument (`bash -c`, `eval`,
	// `su -c`, `watch`, `ssh host cmd`, `trap`, `alias`, a here-document
	// fed to a shell, ...). Deeper code is reported as [ReasonTooDeep].
	MaxDepth = 8

	// MaxBraceWords is how many words one brace expansion may produce
	// (`{a,b}{c,d}` produces four). A larger one is kept unexpanded and
	// reported as [ReasonBraceLimit].
	MaxBraceWords = 1024

	// maxUnknowableText bounds Unknowable.Text, which is for display.
	maxUnknowableText = 512
)

// Sentinel errors. Analyze wraps them with the "shellcmd: " prefix and, for
// ErrSyntax, the position and the parser's message; test with errors.Is.
var (
	// ErrSyntax: the text is not valid shell (bash dialect). A caller that
	// must decide fails closed.
	ErrSyntax = errors.New("syntax error")
	// ErrTooLarge: the text is longer than MaxInputBytes.
	ErrTooLarge = errors.New("input too large")
	// ErrTooComplex: the text nests so deeply that parsing it could
	// exhaust the stack (see the Caveats in the package documentation).
	ErrTooComplex = errors.New("input nests too deeply to parse safely")
	// ErrInternal: a bug in this package or its parser was hit; the
	// analysis is refused rather than crashing the caller.
	ErrInternal = errors.New("internal error")
)

// Reasons reported in Unknowable.Reason. They are stable strings so that a
// caller may match on them, log them, or show them to the user.
const (
	ReasonEval           = "eval of non-literal text"
	ReasonSource         = "source of a non-literal file"
	ReasonParamCommand   = "parameter expansion in command position"
	ReasonSubstCommand   = "command substitution in command position"
	ReasonArithCommand   = "arithmetic expansion in command position"
	ReasonGlobCommand    = "glob in command position"
	ReasonPipeShell      = "pipe into shell"
	ReasonPipeInterp     = "pipe into interpreter"
	ReasonShellStdin     = "shell reading non-literal input"
	ReasonProcSubstShell = "shell script from process substitution"
	ReasonShellString    = "-c string is not literal"
	ReasonShellSyntax    = "-c string does not parse"
	ReasonWrapperArg     = "wrapper argument is not literal"
	ReasonWrapperOption  = "wrapper option not known (it may take the next word)"
	ReasonXargsCommand   = "command built from xargs input"
	ReasonFindExec       = "find executes the files it finds"
	ReasonAlias          = "alias with non-literal value"
	ReasonAliasWords     = "alias whose value runs, hides or joins the words typed after it"
	ReasonIgnoreInt      = "makes the shell ignore Ctrl-C, which then drops no line"
	ReasonTrap           = "trap with non-literal action"
	ReasonPrompt         = "prompt variable with non-literal value"
	ReasonBraceLimit     = "brace expansion too large"
	ReasonTooDeep        = "nesting deeper than MaxDepth"
	ReasonBudget         = "analysis budget exhausted"
	ReasonTooComplex     = "nested text too complex to parse"
	ReasonUnsupported    = "construct not understood"
)

// Command is one simple command that can run.
type Command struct {
	// Argv holds the normalised words: quotes, backslash escapes and
	// ANSI-C strings ($'\x72\x6d') are resolved and brace expansions are
	// expanded. A word that holds an expansion the shell performs at run
	// time keeps that part as its source text ("$HOME/x", "$(date)").
	Argv []string
	// Name is the base name of Argv[0] ("/usr/bin/rm" -> "rm").
	Name string
	// Wrappers lists, outermost first, the wrappers peeled off to reach
	// this command: "sudo", "env", "nice", "timeout", "xargs", "exec",
	// "bash -c", "eval", "find -exec", "ssh", ... Empty for a command
	// written directly.
	Wrappers []string
	// Text is Argv quoted back into one normalised line, for regular
	// expression rules and for display. Analyze(Text) yields Argv again.
	Text string
	// Dynamic reports that the arguments are not all known: one holds an
	// expansion only the running shell performs ($x, "$@", $(cmd)), whose
	// value may be any number of words, options included; or the command
	// gets more arguments at run time (after xargs, in an alias value).
	// Argv shows the visible words; a caller may treat a dynamic command
	// named in a rule as needing approval.
	Dynamic bool
}

// Unknowable is a construct whose effect cannot be known without running
// it: which command runs depends on run-time data.
type Unknowable struct {
	// Text is the source text of the construct, at most 512 bytes (longer
	// text is cut and ends in "...").
	Text string
	// Reason is one of the Reason constants.
	Reason string
}

// Analysis is what Analyze found in one piece of shell text.
type Analysis struct {
	// Commands lists every simple command that can run, in source order:
	// inside lists, pipelines, subshells, blocks, if/while/for/case
	// bodies, function bodies, command and process substitutions, and
	// code written inside arguments (bash -c, eval, ...), recursively up
	// to MaxDepth. A wrapper appears itself and then, with Wrappers set,
	// the command it runs.
	Commands []Command
	// Unknowable lists constructs whose effect cannot be known.
	Unknowable []Unknowable
	// Incomplete reports that the text is an unfinished command (an open
	// quote, a trailing backslash, an open if/for/while, a trailing | or
	// &&, a here-document without its end): an interactive shell would
	// ask for more lines. Commands and Unknowable are then empty; judge
	// the text once the rest has arrived.
	Incomplete bool
	// StdinShell reports that a shell in the text reads its commands from
	// the standard input the text itself is given (`bash`, `bash -o
	// errexit`, `sh /dev/stdin`, `source /dev/stdin`, `sudo -i`, `ssh
	// host`): for an exec, the session's input, which no rule has judged.
	StdinShell bool
}

// Names returns the distinct command names in a, in order of appearance.
func (a *Analysis) Names() []string {
	seen := make(map[string]bool, len(a.Commands))
	var names []string
	for _, c := range a.Commands {
		if !seen[c.Name] {
			seen[c.Name] = true
			names = append(names, c.Name)
		}
	}
	return names
}

// Analyze parses src as bash and reports every simple command in it, the
// constructs whose effect cannot be known, and whether src is unfinished.
//
// A syntax error, a text longer than MaxInputBytes, or a text nested too
// deeply to parse safely is an error (wrapping ErrSyntax, ErrTooLarge or
// ErrTooComplex): the caller must fail closed. Analyze never runs anything
// and never panics: a bug it hits is returned as ErrInternal.
func Analyze(src string) (*Analysis, error) {
	return analyze(src)
}

func analyze(src string) (_ *Analysis, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("shellcmd: %w: %v", ErrInternal, r)
		}
	}()
	if len(src) > MaxInputBytes {
		return nil, fmt.Errorf("shellcmd: %d bytes: %w", len(src), ErrTooLarge)
	}
	if err := checkComplexity(src); err != nil {
		return nil, fmt.Errorf("shellcmd: %w", err)
	}
	views := doubleByteReadings(src)
	f, err := parse(src)
	if err != nil {
		if isIncomplete(src, err) {
			if posixComplete(src) {
				// dash runs the line now, where bash waits for more.
				return nil, fmt.Errorf("shellcmd: %w: unfinished, but complete as a POSIX sh such as dash reads it", ErrSyntax)
			}
			if otherShellComplete(src, err) {
				return nil, fmt.Errorf("shellcmd: %w: unfinished, but complete as zsh or fish reads it", ErrSyntax)
			}
			if viewComplete(views) {
				// A double-byte reader runs the line now, where a UTF-8
				// one waits for more: neither reading can stand.
				return nil, fmt.Errorf("shellcmd: %w: unfinished, but complete as a double-byte locale reads it", ErrSyntax)
			}
			return &Analysis{Incomplete: true}, nil
		}
		return nil, fmt.Errorf("shellcmd: %w: %w", ErrSyntax, err)
	}
	if trailingContinuation(src, f) {
		if viewComplete(views) {
			return nil, fmt.Errorf("shellcmd: %w: unfinished, but complete as a double-byte locale reads it", ErrSyntax)
		}
		return &Analysis{Incomplete: true}, nil
	}
	an := &analyzer{out: &Analysis{}, budget: (4*len(src) + 64<<10) * (2 + len(views))}
	an.walkFile(f.Stmts, scope{src: src}, false)
	// The login shell that runs it may be a POSIX sh such as dash.
	an.posix(src, scope{}, false, src)
	for _, v := range views {
		vf, err := parse(v)
		if err != nil || trailingContinuation(v, vf) {
			an.unknowable(src, ReasonDoubleByte)
			continue
		}
		an.walkFile(vf.Stmts, scope{src: v}, false)
	}
	return an.out, nil
}

// viewComplete reports whether one of the double-byte readings is a
// complete command.
func viewComplete(views []string) bool {
	for _, v := range views {
		if f, err := parse(v); err == nil && !trailingContinuation(v, f) {
			return true
		}
	}
	return false
}

// parse parses src as bash, keeping comments so that a trailing backslash
// inside a comment can be told from a line continuation.
func parse(src string) (*syntax.File, error) {
	p := syntax.NewParser(syntax.Variant(syntax.LangBash), syntax.KeepComments(true))
	return p.Parse(strings.NewReader(src), "")
}

// isIncomplete reports whether the parse error err means that src is an
// unfinished command rather than a wrong one.
func isIncomplete(src string, err error) bool {
	if syntax.IsIncomplete(err) {
		return true
	}
	// A here-document whose quoted delimiter has not come yet: the parser
	// reports it unclosed, while the shell asks for more lines.
	var pe syntax.ParseError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Text, "unclosed here-document") {
		return true
	}
	// "cat <<EOF" without a newline: the parser reports an unclosed
	// here-document, while an interactive shell asks for its lines.
	if strings.HasSuffix(src, "\n") {
		return false
	}
	_, err2 := parse(src + "\n")
	return err2 != nil && syntax.IsIncomplete(err2)
}

// trailingContinuation reports whether src ends in an unescaped backslash
// (optionally followed by one newline) outside a comment: `ls \`.
func trailingContinuation(src string, f *syntax.File) bool {
	s := strings.TrimSuffix(src, "\n")
	n := 0
	for n < len(s) && s[len(s)-1-n] == '\\' {
		n++
	}
	if n%2 == 0 {
		return false
	}
	// A backslash ending a comment continues nothing.
	end := uint(len(s))
	for _, c := range lastComments(f) {
		if c.Hash.Offset() < end && c.End().Offset() >= end {
			return false
		}
	}
	return true
}

// lastComments returns the comments that could end a file that parsed
// completely: the trailing ones of the last statement and of the file. (A
// comment inside an unclosed block would have made the text incomplete.)
func lastComments(f *syntax.File) []syntax.Comment {
	cs := append([]syntax.Comment(nil), f.Last...)
	if len(f.Stmts) > 0 {
		cs = append(cs, f.Stmts[len(f.Stmts)-1].Comments...)
	}
	return cs
}
