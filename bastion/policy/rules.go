package policy

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bastionhq/bastion/bastion/shellcmd"
)

// Rule kinds (config `on:`) and actions.
const (
	OnCommand   = "command"
	OnSQL       = "sql"
	OnOutput    = "output"
	OnSQLResult = "sql_result"

	ActionAllow   = "allow"
	ActionBlock   = "block"
	ActionApprove = "approve"
	ActionMask    = "mask"
)

// What a rule does with constructs whose effect cannot be known without
// running them (eval, a substitution in command position, EXECUTE of a
// string built at run time, ...). For sql_result rules: what to do with a
// result column whose source columns cannot be known (mask, the default, or
// block the statement).
const (
	UnknowableApprove = "approve" // the default for command and sql rules
	UnknowableBlock   = "block"
	UnknowableAllow   = "allow"
	UnknowableMask    = "mask" // the default for sql_result rules
)

// DefaultApprovalTimeout applies when a rule names none.
const DefaultApprovalTimeout = 5 * time.Minute

// KindRedirectWrites is the statement kind of making writes to one relation reach
// another (pgproxy.KindRedirectWrites).
const KindRedirectWrites = "redirect_writes"

// writeKinds are the statement kinds that write to or drop a table.
var writeKinds = map[string]bool{
	"insert": true, "update": true, "delete": true, "merge": true, "upsert": true, "truncate": true,
	"delete_without_where": true, "update_without_where": true, "copy_from": true, "drop_table": true,
	"drop": true, "copy": true,
}

// KindRenameRelation is the statement kind of renaming a relation or moving it to
// another schema (pgproxy.KindRenameRelation).
const KindRenameRelation = "rename_relation"

// Rule is a compiled rule.
type Rule struct {
	Name       string
	On         string
	Action     string
	Targets    []string // scope: target globs; empty = all
	Roles      []string // scope: role names; empty = everyone
	Approvers  []string // role names that may approve
	Timeout    time.Duration
	Unknowable string

	targets []string // Targets in lower case: a rule's scope ignores case

	pattern    *shellcmd.Pattern
	patName    string // the command the pattern names, for dynamic arguments
	commands   []string
	regex      *regexp.Regexp
	statements []string
	tables     []string
	functions  []string
	detector   string
	custom     *regexp.Regexp
	columns    []string
}

// Rules is the compiled rule set, in config order per kind.
type Rules struct {
	command, sql, output, sqlResult []*Rule
}

func compileRules(specs []RuleSpec, knownKind func(string) bool) (*Rules, error) {
	rs := &Rules{}
	for i, rc := range specs {
		f := fmt.Sprintf("policy: rules[%d] (%s)", i, rc.Name)
		r := &Rule{
			Name: rc.Name, On: rc.On, Action: rc.Action, Targets: rc.Targets, Roles: rc.Roles,
			Approvers: rc.Approvers, Timeout: rc.Timeout, Unknowable: rc.Unknowable,
			commands: rc.Match.Commands, statements: rc.Match.Statements, tables: rc.Match.Tables,
			functions: rc.Match.Functions, detector: rc.Match.Detector, columns: rc.Match.Columns,
		}
		if r.Unknowable == "" {
			r.Unknowable = UnknowableApprove
			if r.On == OnSQLResult {
				r.Unknowable = UnknowableMask
			}
		}
		switch {
		case r.On == OnSQLResult && r.Unknowable != UnknowableMask && r.Unknowable != UnknowableBlock:
			return nil, fmt.Errorf("%s: an sql_result rule's unknowable is mask or block, not %q: a value whose source cannot be known is never shown in clear", f, r.Unknowable)
		case r.On != OnSQLResult && r.Unknowable == UnknowableMask:
			return nil, fmt.Errorf("%s: unknowable mask applies to sql_result rules only", f)
		}
		// Names in rules are compared in lower case: PostgreSQL folds unquoted names
		// (CREATE TABLE Orders makes orders), the classifier gives functions in lower
		// case, and a rule whose scope or names differ from what they mean only in case
		// would otherwise match nothing, silently. Matching more is the safe side.
		r.targets, r.tables, r.functions = lowerAll(r.Targets), lowerAll(r.tables), lowerAll(r.functions)
		if r.Action == ActionApprove && r.Timeout == 0 {
			r.Timeout = DefaultApprovalTimeout
		}
		for _, g := range slices.Concat(r.Targets, r.tables, r.functions, r.columns) {
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("%s: bad glob %q: %v", f, g, err)
			}
		}
		if rc.Match.Regex != "" {
			re, err := regexp.Compile(rc.Match.Regex)
			if err != nil {
				return nil, fmt.Errorf("%s: match.regex: %v", f, err)
			}
			r.regex = re
		}
		m := rc.Match
		switch rc.On {
		case OnCommand:
			if m.Command == "" && len(m.Commands) == 0 && m.Regex == "" {
				return nil, fmt.Errorf("%s: a command rule needs match.command, match.commands or match.regex", f)
			}
			if m.Command != "" {
				pat, err := shellcmd.CompilePattern(m.Command)
				if err != nil {
					return nil, fmt.Errorf("%s: match.command: %v", f, err)
				}
				r.pattern = pat
				if a, err := shellcmd.Analyze(m.Command); err == nil && len(a.Commands) > 0 {
					r.patName = a.Commands[len(a.Commands)-1].Name
				}
			}
		case OnSQL:
			if m.Statement != "" {
				r.statements = append(r.statements, m.Statement)
			}
			if len(r.statements) == 0 && len(r.tables) == 0 && len(r.functions) == 0 && m.Regex == "" {
				return nil, fmt.Errorf("%s: an sql rule needs match.statement(s), match.tables, match.functions or match.regex", f)
			}
			for _, k := range r.statements {
				if !validKind(k) {
					return nil, fmt.Errorf("%s: match.statement %q is not a statement kind", f, k)
				}
				if knownKind != nil && !knownKind(k) {
					return nil, fmt.Errorf("%s: match.statement %q is not a statement kind the bastion gives any statement, so the rule would match nothing (kinds: select, insert, update, delete, drop_table, role_change, ...; see README, PostgreSQL)", f, k)
				}
			}
		case OnOutput:
			switch m.Detector {
			case "credit_card":
			case "regex":
				if m.Pattern == "" {
					return nil, fmt.Errorf("%s: detector regex needs match.pattern", f)
				}
				re, err := regexp.Compile(m.Pattern)
				if err != nil {
					return nil, fmt.Errorf("%s: match.pattern: %v", f, err)
				}
				r.custom = re
			default:
				return nil, fmt.Errorf("%s: match.detector %q is not credit_card or regex", f, m.Detector)
			}
		case OnSQLResult:
			if len(r.columns) == 0 && m.Detector == "" {
				return nil, fmt.Errorf("%s: an sql_result rule needs match.columns or match.detector", f)
			}
			for _, c := range r.columns {
				if n := strings.Count(c, ".") + 1; n > 3 || strings.Contains(c, "..") || strings.HasPrefix(c, ".") || strings.HasSuffix(c, ".") {
					return nil, fmt.Errorf("%s: match.columns %q is not column, table.column or schema.table.column", f, c)
				}
			}
			switch m.Detector {
			case "", "credit_card":
			case "regex":
				re, err := regexp.Compile(m.Pattern)
				if err != nil || m.Pattern == "" {
					return nil, fmt.Errorf("%s: match.pattern: %v", f, err)
				}
				r.custom = re
			default:
				return nil, fmt.Errorf("%s: match.detector %q is not credit_card or regex", f, m.Detector)
			}
		}
		switch rc.On {
		case OnCommand:
			rs.command = append(rs.command, r)
		case OnSQL:
			rs.sql = append(rs.sql, r)
		case OnOutput:
			rs.output = append(rs.output, r)
		case OnSQLResult:
			rs.sqlResult = append(rs.sqlResult, r)
		}
	}
	return rs, nil
}

func lowerAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.ToLower(v)
	}
	return out
}

// validKind accepts statement kind names: lower-case words with underscores.
func validKind(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r == '_') {
			return false
		}
	}
	return true
}

// applies reports whether r is in scope for id on target.
func (p *Policy) applies(r *Rule, id Identity, target string) bool {
	if len(r.targets) > 0 && !matchAny(r.targets, strings.ToLower(target)) {
		return false
	}
	if len(r.Roles) == 0 {
		return true
	}
	for _, ro := range p.RolesOf(id) {
		if slices.Contains(r.Roles, ro.Name) {
			return true
		}
	}
	return false
}

func (p *Policy) inScope(rules []*Rule, id Identity, target string) []*Rule {
	var out []*Rule
	for _, r := range rules {
		if p.applies(r, id, target) {
			out = append(out, r)
		}
	}
	return out
}

// Decision is the verdict on a command or statement.
type Decision struct {
	Action    string        // ActionAllow, ActionBlock or ActionApprove
	Rule      string        // the deciding rule; empty for allow
	Reason    string        // what matched, for the user and the audit log
	Approvers []string      // for approve: role names that may decide
	Timeout   time.Duration // for approve
	sets      []string      // for approve: each rule's approvers, for messages
}

func (d Decision) String() string {
	if d.Rule == "" {
		return d.Action
	}
	return fmt.Sprintf("%s by rule %s: %s", d.Action, d.Rule, d.Reason)
}

var allow = Decision{Action: ActionAllow}

// CommandRulesApply reports whether any command rule is in scope for id on
// target (interactive shells are only watched when one is).
func (p *Policy) CommandRulesApply(id Identity, target string) bool {
	return len(p.inScope(p.rules.command, id, target)) > 0
}

// JudgeCommand decides an exec command or a submitted shell line. It parses
// the text with a real shell parser and judges every simple command in it
// (lists, pipelines, substitutions, sh -c strings, wrappers such as sudo).
// A block anywhere wins over an approval; text that cannot be parsed is
// blocked; constructs whose command cannot be known follow the rules'
// unknowable option.
func (p *Policy) JudgeCommand(id Identity, target, text string) Decision {
	return p.judgeCommand(id, target, text, shellcmd.Options{})
}

// JudgeShellLine decides a line typed at an interactive shell (or read by
// a shell from the user's input): as JudgeCommand, and a line that bash's
// history expansion would rewrite after it was judged (!!, ^old^new, ...)
// follows the rules' unknowable option.
func (p *Policy) JudgeShellLine(id Identity, target, text string) Decision {
	return p.judgeCommand(id, target, text, shellcmd.Options{Interactive: true})
}

// JudgeUnreadable decides a line that the bastion could not read (what the
// shell will run is unknown): it follows the unknowable option of every
// command rule in scope, and is allowed when none is.
func (p *Policy) JudgeUnreadable(id Identity, target, why string) Decision {
	rules := p.inScope(p.rules.command, id, target)
	var approve *Decision
	if d, stop := p.unknowables(rules, id, target, why, &approve); stop {
		return d
	}
	return settle(approve)
}

// JudgeShellLineNamed decides a line as JudgeShellLine does, on the
// commands it names alone: what it leaves to run time (a variable in
// command position, eval of a variable, arguments only known then) is not
// held for that. It is for readings the shell may or may not run (a
// typed-ahead line with its first keys read by another program), where
// every such part would hold ordinary lines (`echo $((1+1))` read from its
// `$`).
func (p *Policy) JudgeShellLineNamed(id Identity, target, text string) Decision {
	return p.judgeCommandNamed(id, target, text, shellcmd.Options{Interactive: true}, true)
}

func (p *Policy) judgeCommand(id Identity, target, text string, opt shellcmd.Options) Decision {
	return p.judgeCommandNamed(id, target, text, opt, false)
}

func (p *Policy) judgeCommandNamed(id Identity, target, text string, opt shellcmd.Options, namedOnly bool) Decision {
	rules := p.inScope(p.rules.command, id, target)
	if len(rules) == 0 {
		return allow
	}
	a, err := shellcmd.AnalyzeWith(text, opt)
	if err != nil {
		return Decision{Action: ActionBlock, Rule: rules[0].Name, Reason: fmt.Sprintf("the command cannot be parsed, so it cannot be judged (%v)", err)}
	}
	if a.Incomplete {
		return Decision{Action: ActionBlock, Rule: rules[0].Name, Reason: "the command is incomplete (an open quote, a trailing backslash or an unfinished construct)"}
	}
	var approve *Decision
	for _, c := range a.Commands {
		for _, r := range rules {
			why, ok := r.matchCommand(c, text)
			if !ok {
				if c.Dynamic && !namedOnly && r.patName != "" && c.Name == r.patName {
					// rm "$@": its arguments are only known at run time.
					if d, stop := p.unknowable(r, id, target, fmt.Sprintf("%q has arguments only known at run time", c.Text)); stop {
						return d
					} else if d.Action == ActionApprove {
						mergeApprove(&approve, d)
					}
				}
				continue
			}
			d := Decision{Action: r.Action, Rule: r.Name, Reason: why, Approvers: p.approversFor(r, target), Timeout: r.Timeout}
			if r.Action == ActionBlock {
				return d
			}
			mergeApprove(&approve, d)
		}
	}
	for _, u := range a.Unknowable {
		if namedOnly {
			break
		}
		if d, stop := p.unknowables(rules, id, target, fmt.Sprintf("%q: %s", u.Text, u.Reason), &approve); stop {
			return d
		}
	}
	return settle(approve)
}

// unknowables applies every rule's unknowable option to what: a block
// stops (stop is true), the first approval is kept in *approve.
func (p *Policy) unknowables(rules []*Rule, id Identity, target, what string, approve **Decision) (Decision, bool) {
	for _, r := range rules {
		d, stop := p.unknowable(r, id, target, what)
		if stop {
			return d, true
		}
		if d.Action == ActionApprove {
			mergeApprove(approve, d)
		}
	}
	return Decision{}, false
}

// mergeApprove adds to *approve the approval one more rule asks for. What several
// rules hold is decided only by an approver every one of them accepts: the approver
// roles are those all the rules name, and the timeout is the shortest. Otherwise the
// requester would pick who decides, by putting first a command that a rule with laxer
// approvers holds (touch x; iptables -F). The verdict names the first rule, and each
// rule that narrowed the approvers; settle blocks what no role is left to approve.
func mergeApprove(approve **Decision, d Decision) {
	a := *approve
	if a == nil {
		*approve = &d
		return
	}
	m := *a
	m.Timeout = min(a.Timeout, d.Timeout)
	m.Approvers = slices.DeleteFunc(slices.Clone(a.Approvers), func(r string) bool { return !slices.Contains(d.Approvers, r) })
	if len(m.Approvers) < len(a.Approvers) {
		if len(a.sets) == 0 {
			m.sets = []string{approverSet(*a)}
		}
		m.sets = append(slices.Clone(m.sets), approverSet(d))
		m.Reason = a.Reason + "; rule " + d.Rule + " holds it too (" + d.Reason + ")"
	}
	*approve = &m
}

func approverSet(d Decision) string {
	if len(d.Approvers) == 0 {
		return "rule " + d.Rule + ": none"
	}
	return "rule " + d.Rule + ": " + strings.Join(d.Approvers, ", ")
}

// settle turns the approval found (if any) into the verdict; an approval
// nobody may give fails closed.
func settle(approve *Decision) Decision {
	if approve == nil {
		return allow
	}
	if len(approve.Approvers) == 0 {
		if len(approve.sets) > 1 { // each rule had approvers, but none in common
			return Decision{Action: ActionBlock, Rule: approve.Rule, Reason: approve.Reason + "; these rules hold it for different approvers (" +
				strings.Join(approve.sets, "; ") + ") and no role is among all of them: run its commands separately"}
		}
		return Decision{Action: ActionBlock, Rule: approve.Rule, Reason: approve.Reason + "; no role may approve it on this target"}
	}
	return *approve
}

// unknowable applies r's unknowable option; stop is true for a block.
func (p *Policy) unknowable(r *Rule, id Identity, target, what string) (Decision, bool) {
	switch r.Unknowable {
	case UnknowableAllow:
		return allow, false
	case UnknowableBlock:
		return Decision{Action: ActionBlock, Rule: r.Name, Reason: "cannot be judged: " + what}, true
	}
	to := r.Timeout
	if to == 0 {
		to = DefaultApprovalTimeout
	}
	return Decision{Action: ActionApprove, Rule: r.Name, Reason: "cannot be judged: " + what, Approvers: p.approversFor(r, target), Timeout: to}, false
}

// approversFor is the rule's approver roles, or, for a rule without them
// (a block rule deferring an unknowable construct), every role whose
// approve scope covers the target.
func (p *Policy) approversFor(r *Rule, target string) []string {
	if len(r.Approvers) > 0 {
		return r.Approvers
	}
	var out []string
	for _, ro := range p.roles {
		if len(ro.Approve) > 0 && matchAny(ro.Approve, target) {
			out = append(out, ro.Name)
		}
	}
	return out
}

func (r *Rule) matchCommand(c shellcmd.Command, whole string) (string, bool) {
	if r.pattern != nil && r.pattern.Match(c) {
		return fmt.Sprintf("%q matches %q", c.Text, r.pattern.String()), true
	}
	if slices.Contains(r.commands, c.Name) {
		return fmt.Sprintf("%q runs %s", c.Text, c.Name), true
	}
	if c.Name == "sftp-server" {
		// sftp -s PATH runs the sftp server as an exec: the session of
		// sftp, and of scp (it speaks sftp since OpenSSH 9.0), as the
		// sftp subsystem is judged.
		for _, n := range []string{"sftp", "scp"} {
			if slices.Contains(r.commands, n) {
				return fmt.Sprintf("%q is an %s session", c.Text, n), true
			}
		}
	}
	if r.regex != nil && (r.regex.MatchString(c.Text) || r.regex.MatchString(whole)) {
		return fmt.Sprintf("%q matches /%s/", c.Text, r.regex), true
	}
	return "", false
}

// Statement is a parsed SQL statement, as the PostgreSQL inspector
// classifies it.
type Statement struct {
	Kinds      []string // e.g. "drop_table", "delete_without_where"
	Tables     []string
	Functions  []string // functions called or named, schema-qualified when written so
	Normalized string
	Unknowable string // why its effect cannot be known, if so
	// Body holds the statements of the function, procedure and DO bodies the statement
	// writes; each is judged as if sent directly (the strictest verdict wins).
	Body []Statement
}

// JudgeSQL decides one SQL statement: the statement itself and every
// statement of the bodies it writes, each as if sent directly. A block
// anywhere wins over an approval.
func (p *Policy) JudgeSQL(id Identity, target string, st Statement) Decision {
	rules := p.inScope(p.rules.sql, id, target)
	var approve *Decision
	var judge func(s *Statement, inBody bool) *Decision
	judge = func(s *Statement, inBody bool) *Decision {
		for _, r := range rules {
			why, ok := r.matchSQL(*s)
			if !ok {
				continue
			}
			if inBody {
				why = "in a body: " + why
			}
			d := Decision{Action: r.Action, Rule: r.Name, Reason: why, Approvers: p.approversFor(r, target), Timeout: r.Timeout}
			if r.Action == ActionBlock {
				return &d
			}
			mergeApprove(&approve, d)
		}
		for i := range s.Body {
			if d := judge(&s.Body[i], true); d != nil {
				return d
			}
		}
		return nil
	}
	if d := judge(&st, false); d != nil {
		return *d
	}
	if st.Unknowable != "" {
		if d, stop := p.unknowables(rules, id, target, st.Unknowable, &approve); stop {
			return d
		}
	}
	return settle(approve)
}

func (r *Rule) matchSQL(st Statement) (string, bool) {
	kindOK := len(r.statements) == 0
	var kind string
	for _, k := range r.statements {
		if slices.Contains(st.Kinds, k) {
			kindOK, kind = true, k
			break
		}
	}
	tableOK := len(r.tables) == 0
	var table string
	for _, t := range st.Tables {
		lt := strings.ToLower(t)
		if matchAny(r.tables, lt) || matchAny(r.tables, lt[strings.LastIndexByte(lt, '.')+1:]) || matchTrailing(r.tables, lt) {
			tableOK, table = true, t
			break
		}
	}
	// A relation renamed or moved to another schema escapes every rule naming it from
	// then on (ALTER TABLE victim RENAME TO x; DELETE FROM x): a rule scoped to tables
	// matches renaming one of them, whatever statements it lists.
	if !kindOK && tableOK && len(r.tables) > 0 && slices.Contains(st.Kinds, KindRenameRelation) {
		kindOK, kind = true, KindRenameRelation
	}
	// Writes to one relation the statement names reach another from then on (an
	// updatable view of it, a partition attached, a cascading foreign key), whoever
	// writes them (a function body judged before): a rule scoped to tables and listing
	// a write matches the redirection.
	if !kindOK && tableOK && len(r.tables) > 0 && slices.Contains(st.Kinds, KindRedirectWrites) &&
		slices.ContainsFunc(r.statements, func(k string) bool { return writeKinds[k] }) {
		kindOK, kind = true, KindRedirectWrites
	}
	funcOK := len(r.functions) == 0
	var fn string
	for _, f := range st.Functions {
		lf := strings.ToLower(f)
		if matchAny(r.functions, lf) || matchAny(r.functions, lf[strings.LastIndexByte(lf, '.')+1:]) {
			funcOK, fn = true, f
			break
		}
	}
	regexOK := r.regex == nil || r.regex.MatchString(st.Normalized)
	if !kindOK || !tableOK || !funcOK || !regexOK {
		return "", false
	}
	var parts []string
	if kind != "" {
		parts = append(parts, "statement "+kind)
	}
	if table != "" {
		parts = append(parts, "table "+table)
	}
	if fn != "" {
		parts = append(parts, "function "+fn)
	}
	if r.regex != nil {
		parts = append(parts, "/"+r.regex.String()+"/")
	}
	return strings.Join(parts, ", "), true
}

// OutputMask is what output rules ask to mask in a session.
type OutputMask struct {
	Rules    []string // names of the rules in force
	Cards    bool
	Patterns []*regexp.Regexp
}

// OutputMasks returns the masking rules in force for id on target.
func (p *Policy) OutputMasks(id Identity, target string) OutputMask {
	var m OutputMask
	for _, r := range p.inScope(p.rules.output, id, target) {
		m.Rules = append(m.Rules, r.Name)
		if r.detector == "credit_card" {
			m.Cards = true
		}
		if r.custom != nil {
			m.Patterns = append(m.Patterns, r.custom)
		}
	}
	return m
}

// Key is what m masks, as a string: two OutputMasks with the same Key mask
// the same output (a reload that changes it must reach live sessions).
func (m OutputMask) Key() string {
	return maskKey(nil, false, m.Cards, m.Patterns)
}

func maskKey(columns []string, block, cards bool, patterns []*regexp.Regexp) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cards=%t block=%t", cards, block)
	for _, c := range columns {
		fmt.Fprintf(&b, " column=%q", c)
	}
	for _, p := range patterns {
		fmt.Fprintf(&b, " pattern=%q", p.String())
	}
	return b.String()
}

// ResultMask is what sql_result (and output) rules ask to mask in
// database results.
type ResultMask struct {
	Rules []string
	// Columns are the column patterns masked entirely: "col" (any relation's
	// column of that name), "table.col" or "schema.table.col", each part a
	// glob, compared in lower case.
	Columns []string
	// ColumnRules names the sql_result rules with columns.
	ColumnRules []string
	// BlockUnknowable: one of them says unknowable: block.
	BlockUnknowable bool
	Cards           bool
	Patterns        []*regexp.Regexp
}

// ResultMasks returns the result masking in force for id on target: the
// sql_result rules and, for values, the output detectors too.
func (p *Policy) ResultMasks(id Identity, target string) ResultMask {
	var m ResultMask
	for _, r := range p.inScope(p.rules.sqlResult, id, target) {
		m.Rules = append(m.Rules, r.Name)
		m.Columns = append(m.Columns, r.columns...)
		if len(r.columns) > 0 {
			m.ColumnRules = append(m.ColumnRules, r.Name)
			m.BlockUnknowable = m.BlockUnknowable || r.Unknowable == UnknowableBlock
		}
		if r.detector == "credit_card" {
			m.Cards = true
		}
		if r.custom != nil {
			m.Patterns = append(m.Patterns, r.custom)
		}
	}
	om := p.OutputMasks(id, target)
	m.Rules = append(m.Rules, om.Rules...)
	m.Cards = m.Cards || om.Cards
	m.Patterns = append(m.Patterns, om.Patterns...)
	return m
}

// Key is what m masks, as a string: two ResultMasks with the same Key mask
// the same values.
func (m ResultMask) Key() string {
	return maskKey(m.Columns, m.BlockUnknowable, m.Cards, m.Patterns)
}

// MaskColumn reports whether a result column is masked entirely by its
// name: the patterns without a table part.
func (m ResultMask) MaskColumn(name string) bool {
	name = strings.ToLower(name)
	for _, c := range m.Columns {
		if !strings.Contains(c, ".") && matchAny([]string{strings.ToLower(c)}, name) {
			return true
		}
	}
	return false
}

// MaskSource reports whether a column of a relation is masked: "col"
// patterns match the column of any relation, "table.col" the relation's
// name too, "schema.table.col" its schema as well. An empty schema
// (unknown) matches any.
func (m ResultMask) MaskSource(schema, table, column string) bool {
	schema, table, column = strings.ToLower(schema), strings.ToLower(table), strings.ToLower(column)
	for _, c := range m.Columns {
		parts := strings.Split(strings.ToLower(c), ".")
		ok := false
		switch len(parts) {
		case 1:
			ok = globMatch(parts[0], column)
		case 2:
			ok = globMatch(parts[0], table) && globMatch(parts[1], column)
		case 3:
			ok = (schema == "" || globMatch(parts[0], schema)) && globMatch(parts[1], table) && globMatch(parts[2], column)
		}
		if ok {
			return true
		}
	}
	return false
}

// matchTrailing reports whether a glob naming a table with its schema (public.victim,
// or with its database too) matches a name written with fewer parts (victim, or
// public.victim against shop.public.victim): the search_path, or the connection's
// database, supplies the rest, and the bastion does not know it, so the parts both
// have decide.
func matchTrailing(globs []string, t string) bool {
	parts := strings.Split(t, ".")
	for _, g := range globs {
		gp := strings.Split(g, ".")
		if len(gp) < 2 {
			continue
		}
		n := min(len(gp), len(parts))
		if globMatch(strings.Join(gp[len(gp)-n:], "."), strings.Join(parts[len(parts)-n:], ".")) {
			return true
		}
	}
	return false
}

func globMatch(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}
