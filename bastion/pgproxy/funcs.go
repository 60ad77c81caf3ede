package pgproxy

import (
	"fmt"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// Kinds for what a statement can do beyond the database's tables, whether by a statement
// or by calling a function. Rules name them like any other kind.
const (
	// KindRoleChange: the session's privileges change (SET ROLE, SET SESSION
	// AUTHORIZATION, RESET ROLE/ALL, DISCARD ALL, set_config('role' | 'session_authorization',
	// ...)) or roles are created, altered, granted or dropped.
	KindRoleChange = "role_change"
	// KindFileRead: a file or directory on the database server is read (pg_read_file,
	// pg_ls_dir, pg_stat_file, lo_import, COPY ... FROM 'file', ...).
	KindFileRead = "file_read"
	// KindFileWrite: a file on the database server is written (lo_export, adminpack's
	// pg_file_write, COPY ... TO 'file', CREATE TABLESPACE, ...).
	KindFileWrite = "file_write"
	// KindServerProgram: a program or native code runs on the database server (COPY ...
	// PROGRAM, LOAD, CREATE FUNCTION ... LANGUAGE c).
	KindServerProgram = "server_program"
	// KindRemoteConnection: the server connects to another server (dblink*, foreign
	// servers and user mappings, IMPORT FOREIGN SCHEMA, subscriptions).
	KindRemoteConnection = "remote_connection"
	// KindServerAdmin: the server itself is administered (pg_terminate_backend,
	// pg_cancel_backend, pg_reload_conf, pg_rotate_logfile, ALTER SYSTEM, CREATE EXTENSION,
	// LOAD, CHECKPOINT, replication slots, ...).
	KindServerAdmin = "server_admin"
)

// roleSettings are the settings that change the session's privileges.
var roleSettings = map[string]bool{"role": true, "session_authorization": true}

// scsSetting changes how the server reads SQL text. pg_query always reads text as
// standard_conforming_strings=on; with it off, a backslash in a '...' string escapes the
// next character, so the server and the classifier see different statements in the
// same text (a string holding a backslash before a doubled quote, then "; DROP TABLE t;
// --", is one string constant to pg_query, and a string and a DROP to the server). The session refuses backslashes while the server reports the setting
// off (backslashSafe), but a change that takes effect where the session cannot see it
// is another matter: earlier in the same Query, before a DO or function body is read;
// in a function's SET clause, applied at every call to the body read then; for a role
// or database. So every statement that could set it to anything but on is refused
// outright (ErrUnsafeSetting): SET, SET LOCAL, RESET, SET ... TO DEFAULT, SET ... FROM
// CURRENT, set_config(), a routine's SET clause, ALTER ROLE/DATABASE/SYSTEM ... SET or
// RESET of it. A set_config() of a setting name not written as a constant is
// unknowable, as is EXECUTE of a computed string.
const scsSetting = "standard_conforming_strings"

// settingOn reports whether a constant is a value PostgreSQL reads as boolean true.
func settingOn(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "on", "true", "yes", "1":
		return true
	}
	return false
}

// lexerSetting refuses a SET (in any of its forms) of standard_conforming_strings to
// anything but a constant on.
func (c *collector) lexerSetting(n *pg.VariableSetStmt) {
	if strings.ToLower(n.Name) != scsSetting {
		return
	}
	c.constDep = true // the value is read: SET ... = 'on' and = 'off' share a cache key
	if n.Kind == pg.VariableSetKind_VAR_SET_VALUE && len(n.Args) == 1 {
		if ac := n.Args[0].GetAConst(); ac != nil && !ac.Isnull {
			if s := ac.GetSval(); s != nil && settingOn(s.Sval) {
				return
			}
			if i := ac.GetIval(); i != nil && i.Ival == 1 {
				return
			}
		}
	}
	c.refuse("%s can only be set to on here: the bastion reads SQL as PostgreSQL does with it on", scsSetting)
}

// funcKinds classifies functions by name (without schema, lower case). A function of
// the same name in another schema is classified the same: stricter, never a bypass.
var funcKinds = map[string][]string{
	"pg_read_file":            {KindFileRead},
	"pg_read_binary_file":     {KindFileRead},
	"pg_ls_dir":               {KindFileRead},
	"pg_stat_file":            {KindFileRead},
	"pg_ls_logdir":            {KindFileRead},
	"pg_ls_waldir":            {KindFileRead},
	"pg_ls_tmpdir":            {KindFileRead},
	"pg_ls_archive_statusdir": {KindFileRead},
	"pg_ls_logicalsnapdir":    {KindFileRead},
	"pg_ls_logicalmapdir":     {KindFileRead},
	"pg_ls_replslotdir":       {KindFileRead},
	"pg_ls_summariesdir":      {KindFileRead},
	"pg_file_read":            {KindFileRead}, // adminpack (old versions)
	"pg_logdir_ls":            {KindFileRead}, // adminpack
	"lo_import":               {KindFileRead},
	"lo_export":               {KindFileWrite},
	"pg_file_write":           {KindFileWrite}, // adminpack
	"pg_file_rename":          {KindFileWrite},
	"pg_file_unlink":          {KindFileWrite},
	"pg_file_sync":            {KindFileWrite},

	"pg_terminate_backend":                   {KindServerAdmin},
	"pg_cancel_backend":                      {KindServerAdmin},
	"pg_reload_conf":                         {KindServerAdmin},
	"pg_rotate_logfile":                      {KindServerAdmin},
	"pg_rotate_logfile_old":                  {KindServerAdmin},
	"pg_promote":                             {KindServerAdmin},
	"pg_switch_wal":                          {KindServerAdmin},
	"pg_create_restore_point":                {KindServerAdmin},
	"pg_backup_start":                        {KindServerAdmin},
	"pg_backup_stop":                         {KindServerAdmin},
	"pg_start_backup":                        {KindServerAdmin},
	"pg_stop_backup":                         {KindServerAdmin},
	"pg_wal_replay_pause":                    {KindServerAdmin},
	"pg_wal_replay_resume":                   {KindServerAdmin},
	"pg_create_physical_replication_slot":    {KindServerAdmin},
	"pg_create_logical_replication_slot":     {KindServerAdmin},
	"pg_drop_replication_slot":               {KindServerAdmin},
	"pg_copy_physical_replication_slot":      {KindServerAdmin},
	"pg_copy_logical_replication_slot":       {KindServerAdmin},
	"pg_replication_slot_advance":            {KindServerAdmin},
	"pg_logical_slot_get_changes":            {KindServerAdmin},
	"pg_logical_slot_peek_changes":           {KindServerAdmin},
	"pg_logical_slot_get_binary_changes":     {KindServerAdmin},
	"pg_logical_slot_peek_binary_changes":    {KindServerAdmin},
	"pg_logical_emit_message":                {KindServerAdmin},
	"pg_sync_replication_slots":              {KindServerAdmin},
	"pg_log_backend_memory_contexts":         {KindServerAdmin},
	"pg_stat_reset":                          {KindServerAdmin},
	"pg_stat_reset_shared":                   {KindServerAdmin},
	"pg_stat_reset_single_table_counters":    {KindServerAdmin},
	"pg_stat_reset_single_function_counters": {KindServerAdmin},
	"pg_stat_reset_slru":                     {KindServerAdmin},
	"pg_stat_reset_replication_slot":         {KindServerAdmin},
	"pg_stat_reset_subscription_stats":       {KindServerAdmin},
	"pg_replication_origin_create":           {KindServerAdmin},
	"pg_replication_origin_drop":             {KindServerAdmin},
	"pg_replication_origin_advance":          {KindServerAdmin},
	"pg_replication_origin_session_setup":    {KindServerAdmin},
	"pg_replication_origin_session_reset":    {KindServerAdmin},
	"pg_replication_origin_xact_setup":       {KindServerAdmin},
	"pg_import_system_collations":            {KindServerAdmin},
	"pg_hba_file_rules":                      {KindFileRead},
	"pg_ident_file_mappings":                 {KindFileRead},
	"pg_show_all_file_settings":              {KindFileRead},
}

// relationKinds classifies relations by name: views that read the server's files.
var relationKinds = map[string][]string{
	"pg_hba_file_rules":      {KindFileRead},
	"pg_ident_file_mappings": {KindFileRead},
	"pg_file_settings":       {KindFileRead},
}

// unknowableFuncs execute an SQL string or read a relation named in a string: what they
// do (which statement, which table) is not in the text. ts_rewrite runs SQL only in its
// two-argument form (see sqlTextCall). Extensions' functions that run SQL they are given
// (pg_cron's, pg_background's, tablefunc's) are listed by name too: stricter for a function of the
// same name elsewhere, never a bypass.
var unknowableFuncs = map[string]bool{
	"query_to_xml": true, "query_to_xmlschema": true, "query_to_xml_and_xmlschema": true,
	"ts_stat": true, "ts_rewrite": true,
	"table_to_xml": true, "table_to_xml_and_xmlschema": true, "cursor_to_xml": true,
	"schema_to_xml": true, "schema_to_xml_and_xmlschema": true,
	"database_to_xml": true, "database_to_xml_and_xmlschema": true,
	"schedule": true, "schedule_in_database": true, "alter_job": true, // pg_cron: runs the command later
	"pg_background_launch": true, // pg_background
	// tablefunc (trusted: any role with CREATE on the database may install it) runs
	// crosstab's source and category queries, and pastes connectby's table and column
	// names into a query of its own.
	"crosstab": true, "crosstab2": true, "crosstab3": true, "crosstab4": true, "connectby": true,
}

// sqlTextCall reports whether a call of a function named base runs SQL text or reads a
// relation it is given by name. ts_rewrite(query, target, substitute) rewrites with
// constants; ts_rewrite(query, select) runs select.
func sqlTextCall(base string, n *pg.FuncCall) bool {
	if base == "ts_rewrite" && n != nil && len(n.Args) == 3 {
		for _, a := range n.Args {
			if a.GetNamedArgExpr() != nil {
				return true
			}
		}
		return false
	}
	return unknowableFuncs[base]
}

// classifyFuncName adds the kinds of the function named name (possibly
// schema-qualified), wherever it is named: called, or named as the function behind a
// cast, operator, aggregate, trigger or type.
func (c *collector) classifyFuncName(name string) {
	c.classifyFunc(name, nil)
}

// classifyFunc is classifyFuncName for a call n (nil when the function is only named).
func (c *collector) classifyFunc(name string, n *pg.FuncCall) {
	base := strings.ToLower(name[strings.LastIndexByte(name, '.')+1:])
	if base == "" {
		return
	}
	c.kind(funcKinds[base]...)
	switch {
	case base == "set_config":
		c.kind("set_config")
	case strings.HasPrefix(base, "dblink"):
		c.kind(KindRemoteConnection)
		c.unknown(fmt.Sprintf("%s() runs SQL on another connection, which is not in the statement text", base))
	case sqlTextCall(base, n):
		c.unknown(fmt.Sprintf("%s() runs SQL (or reads a relation) that is not in the statement text", base))
	}
}

// call classifies a function call, including what only its arguments say: a
// set_config() of role or session_authorization is a role change.
func (c *collector) call(n *pg.FuncCall) {
	name := qualifiedName(n.Funcname)
	c.classifyFunc(name, n)
	if strings.ToLower(name[strings.LastIndexByte(name, '.')+1:]) != "set_config" {
		return
	}
	c.constDep = true
	arg := callArg(n, 0, "setting_name")
	if arg == nil {
		c.unknown("set_config() without a setting name")
		return
	}
	setting, ok := constString(arg)
	if !ok {
		c.unknown("set_config() with a setting name only known at run time")
		return
	}
	if roleSettings[strings.ToLower(setting)] {
		c.kind(KindRoleChange)
	}
	if strings.ToLower(setting) == scsSetting {
		if v, ok := constString(callArg(n, 1, "new_value")); !ok || !settingOn(v) {
			c.refuse("set_config() can only set %s to on here: the bastion reads SQL as PostgreSQL does with it on", scsSetting)
		}
	}
}

// callArg returns a call's argument by position or, when passed by name, by name.
func callArg(n *pg.FuncCall, pos int, name string) *pg.Node {
	for i, a := range n.Args {
		if na := a.GetNamedArgExpr(); na != nil {
			if na.Name == name {
				return na.Arg
			}
			continue
		}
		if i == pos {
			return a
		}
	}
	return nil
}

// constString returns the value of a string constant, possibly cast ('role'::text).
func constString(n *pg.Node) (string, bool) {
	for n != nil {
		if tc := n.GetTypeCast(); tc != nil {
			n = tc.Arg
			continue
		}
		if ac := n.GetAConst(); ac != nil && !ac.Isnull {
			if s := ac.GetSval(); s != nil {
				return s.Sval, true
			}
		}
		return "", false
	}
	return "", false
}

// libraryLoadSettings are the settings whose value names shared libraries
// that PostgreSQL loads into a backend: at connection start (the preload
// lists), for JIT (jit_provider), or where LOAD looks (dynamic_library_path).
var libraryLoadSettings = map[string]bool{
	"local_preload_libraries": true, "session_preload_libraries": true,
	"shared_preload_libraries": true, "jit_provider": true, "dynamic_library_path": true,
}

// extraKinds adds the kinds that say what a statement can do beyond tables. It runs
// after visit, which names every statement by its node type.
func (c *collector) extraKinds(n any) {
	switch n := n.(type) {
	case *pg.CopyStmt:
		switch {
		case n.IsProgram:
			c.kind(KindServerProgram)
		case n.Filename != "" && n.IsFrom:
			c.kind(KindFileRead)
		case n.Filename != "":
			c.kind(KindFileWrite)
		}
	case *pg.DiscardStmt:
		if n.Target == pg.DiscardMode_DISCARD_ALL {
			c.kind(KindRoleChange) // DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT
		}
	case *pg.LoadStmt:
		c.kind(KindServerProgram, KindServerAdmin)
	case *pg.VariableSetStmt:
		// SET, ALTER ROLE/DATABASE/SYSTEM ... SET and a routine's SET clause: a
		// setting that names shared libraries makes later connections (or
		// JIT) load them, as LOAD does now.
		if libraryLoadSettings[strings.ToLower(n.Name)] {
			c.kind("load", KindServerProgram, KindServerAdmin)
		}
	case *pg.RangeVar:
		c.kind(relationKinds[strings.ToLower(n.Relname)]...)
	case *pg.UpdateStmt:
		// pg_settings has an UPDATE rule that calls set_config(): UPDATE pg_settings SET
		// setting = 'priv' WHERE name = 'role' is SET ROLE.
		if n.Relation != nil && strings.ToLower(n.Relation.Relname) == "pg_settings" {
			c.kind("set", "set_config", KindRoleChange)
			// Any setting: standard_conforming_strings too (see scsSetting).
			c.unknown("UPDATE pg_settings can change any setting, one that changes how SQL is read included")
		}
	case *pg.CreatePublicationStmt, *pg.AlterPublicationStmt:
		c.kind(KindServerAdmin) // a publication offers the tables' rows to subscribers elsewhere
	case *pg.AlterSystemStmt, *pg.CheckPointStmt, *pg.CreateExtensionStmt, *pg.AlterExtensionStmt,
		*pg.AlterExtensionContentsStmt, *pg.CreatePLangStmt, *pg.CreateFdwStmt, *pg.AlterFdwStmt,
		*pg.AlterTableSpaceOptionsStmt:
		c.kind(KindServerAdmin)
	case *pg.CreateTableSpaceStmt:
		c.kind(KindServerAdmin, KindFileWrite)
	case *pg.CreateForeignServerStmt, *pg.AlterForeignServerStmt, *pg.CreateUserMappingStmt,
		*pg.AlterUserMappingStmt, *pg.ImportForeignSchemaStmt, *pg.CreateForeignTableStmt,
		*pg.CreateSubscriptionStmt, *pg.AlterSubscriptionStmt:
		c.kind(KindRemoteConnection)
		switch n := n.(type) {
		case *pg.CreateForeignTableStmt:
			c.fdwOptions(n.Options)
		case *pg.CreateForeignServerStmt:
			c.fdwOptions(n.Options)
		case *pg.AlterForeignServerStmt:
			c.fdwOptions(n.Options)
		}
	case *pg.AlterTableStmt:
		for _, cmd := range n.Cmds {
			if ac := cmd.GetAlterTableCmd(); ac != nil && ac.Subtype == pg.AlterTableType_AT_GenericOptions {
				if l := ac.Def.GetList(); l != nil {
					c.fdwOptions(l.Items)
				}
			}
		}
	case *pg.ObjectWithArgs:
		// A function named as an object: CREATE CAST ... WITH FUNCTION, ALTER FUNCTION
		// ... RENAME, GRANT EXECUTE ON FUNCTION, operator class support functions.
		c.namedFunc(qualifiedName(n.Objname))
	case *pg.CreateTrigStmt:
		c.namedFunc(qualifiedName(n.Funcname))
	case *pg.CreateEventTrigStmt:
		c.namedFunc(qualifiedName(n.Funcname))
	case *pg.CreateConversionStmt:
		c.namedFunc(qualifiedName(n.FuncName))
	case *pg.DefineStmt:
		// CREATE OPERATOR (FUNCTION = f), CREATE AGGREGATE (SFUNC = f), CREATE TYPE
		// (INPUT = f): a function named in the definition runs when the object is used.
		c.funcOptions(n.Definition, false)
	case *pg.CreateRangeStmt:
		c.funcOptions(n.Params, true) // subtype_diff, canonical
	case *pg.AlterOperatorStmt:
		c.funcOptions(n.Options, true) // restrict, join
	case *pg.AlterTypeStmt:
		c.funcOptions(n.Options, true) // receive, send, subscript, ...
	case *pg.CreateFunctionStmt:
		for _, o := range n.Options {
			if de := o.GetDefElem(); de != nil && de.Defname == "support" {
				c.funcOptions([]*pg.Node{o}, true)
			}
		}
	case *pg.AlterFunctionStmt:
		for _, o := range n.Actions {
			if de := o.GetDefElem(); de != nil && de.Defname == "support" {
				c.funcOptions([]*pg.Node{o}, true)
			}
		}
	}
}

// funcSlots are the options of CREATE OPERATOR, AGGREGATE, TYPE (base or range), TEXT
// SEARCH PARSER or TEMPLATE, ALTER OPERATOR or TYPE, and a routine's SUPPORT that name
// a function the server calls when the object is used.
var funcSlots = map[string]bool{
	"function": true, "procedure": true, "restrict": true, "join": true,
	"sfunc": true, "finalfunc": true, "combinefunc": true, "serialfunc": true, "deserialfunc": true,
	"msfunc": true, "minvfunc": true, "mfinalfunc": true,
	"input": true, "output": true, "receive": true, "send": true, "typmod_in": true, "typmod_out": true,
	"analyze": true, "subscript": true, "subtype_diff": true, "canonical": true,
	"start": true, "gettoken": true, "end": true, "headline": true, "lextypes": true, "init": true, "lexize": true,
	"support": true,
}

// funcOptions classifies the functions named in an object's options. In a DefineStmt
// every option's name was classified as a function's (its kinds; a type or operator
// name has none); the function slots also count as naming the function, for rules'
// functions globs. onlySlots limits both to the function slots.
func (c *collector) funcOptions(opts []*pg.Node, onlySlots bool) {
	for _, d := range opts {
		de := d.GetDefElem()
		if de == nil || de.Arg == nil {
			continue
		}
		slot := funcSlots[strings.ToLower(de.Defname)]
		if onlySlots && !slot {
			continue
		}
		var name string
		switch {
		case de.Arg.GetTypeName() != nil:
			name = qualifiedName(de.Arg.GetTypeName().Names)
		case de.Arg.GetList() != nil:
			name = qualifiedName(de.Arg.GetList().Items)
		case de.Arg.GetString_() != nil:
			name = de.Arg.GetString_().Sval
		case de.Arg.GetObjectWithArgs() != nil:
			continue // walked as an ObjectWithArgs
		}
		if name == "" {
			continue
		}
		if slot {
			c.namedFunc(name)
		} else {
			c.classifyFuncName(name)
		}
	}
}

// namedFunc counts a function named (not called) in the statement as called: it runs
// when what the statement defines is used (an operator, a cast, a trigger).
func (c *collector) namedFunc(name string) {
	c.explicitCall(name)
	c.classifyFuncName(name)
}

// fdwOptions classifies a foreign table's (or server's) options: file_fdw runs the
// command in "program", or reads the server file in "filename", each time the table is
// read, as COPY ... PROGRAM and COPY ... FROM 'file' do.
func (c *collector) fdwOptions(opts []*pg.Node) {
	for _, o := range opts {
		de := o.GetDefElem()
		if de == nil || de.Defaction == pg.DefElemAction_DEFELEM_DROP {
			continue
		}
		switch strings.ToLower(de.Defname) {
		case "program":
			c.kind(KindServerProgram)
		case "filename":
			c.kind(KindFileRead)
		}
	}
}

// olderServerCall is the function a PostgreSQL server older than the parser's (17) calls
// where pg_query reads SQL/JSON syntax of its own: "json_scalar(x)" is a JsonScalarExpr
// to pg_query, but to PostgreSQL 15 (16 for some) a call of whatever function named
// json_scalar the session can reach, such as one created in public that reads a masked
// column. So these count as calls of that name too (a function of that name that does
// not exist reads nothing). "" for any other node.
func olderServerCall(n any) string {
	switch n := n.(type) {
	case *pg.JsonScalarExpr:
		return "json_scalar"
	case *pg.JsonSerializeExpr:
		return "json_serialize"
	case *pg.JsonParseExpr:
		return "json"
	case *pg.JsonFuncExpr:
		switch n.Op {
		case pg.JsonExprOp_JSON_EXISTS_OP:
			return "json_exists"
		case pg.JsonExprOp_JSON_QUERY_OP:
			return "json_query"
		case pg.JsonExprOp_JSON_VALUE_OP:
			return "json_value"
		case pg.JsonExprOp_JSON_TABLE_OP:
			return "json_table"
		}
	case *pg.JsonTable:
		return "json_table"
	case *pg.JsonObjectConstructor:
		return "json_object"
	case *pg.JsonArrayConstructor, *pg.JsonArrayQueryConstructor:
		return "json_array"
	case *pg.JsonObjectAgg:
		return "json_objectagg"
	case *pg.JsonArrayAgg:
		return "json_arrayagg"
	case *pg.MergeSupportFunc:
		return "merge_action"
	}
	return ""
}
