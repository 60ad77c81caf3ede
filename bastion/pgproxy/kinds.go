package pgproxy

import (
	"strings"
	"sync"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// literalKinds are the kinds the classifier gives by name (the others come from
// PostgreSQL's node and object type names: see KnownKind).
var literalKinds = []string{
	"select", "values", "select_into", "select_for_update", "insert", "upsert", "update",
	"update_without_where", "delete", "delete_without_where", "merge", "truncate", "drop",
	"create", "alter", "rename", "grant", "revoke", "grant_role", "revoke_role", "drop_owned",
	"set", "reset", "set_config", "copy", "copy_from", "copy_to", "copy_program",
	"copy_from_stdin", "copy_to_stdout", "do", "transaction", "vacuum", "analyze", "move",
	"fetch", "explain", "execute", "prepare", "call", "lock", "load", "show", "declare_cursor",
	"close_cursor", "checkpoint", "refresh_materialized_view", "function_call",
	"replication_command", KindRoleChange, KindFileRead, KindFileWrite, KindServerProgram,
	KindRemoteConnection, KindServerAdmin, KindRenameRelation, KindRedirectWrites,
}

var (
	knownKindsOnce sync.Once
	knownKinds     map[string]bool
)

// KnownKind reports whether k is a kind the classifier can give a statement: a rule
// naming any other kind (a typo such as drop_tables) would match nothing, silently.
func KnownKind(k string) bool {
	knownKindsOnce.Do(func() {
		m := map[string]bool{}
		add := func(ks ...string) {
			for _, k := range ks {
				m[k] = true
			}
		}
		add(literalKinds...)
		add(containedKinds...)
		for _, ks := range funcKinds {
			add(ks...)
		}
		for _, ks := range relationKinds {
			add(ks...)
		}
		for w := range replicationCommands {
			add(strings.ToLower(w))
		}
		for _, name := range pg.TransactionStmtKind_name {
			add(strings.ToLower(strings.TrimPrefix(name, "TRANS_STMT_")))
		}
		// DROP, ALTER, CREATE, ALTER ... RENAME of any object type.
		for v := range pg.ObjectType_name {
			o := objectName(pg.ObjectType(v))
			add("create_"+o, "alter_"+o, "drop_"+o)
		}
		// Statements named after their node (checkpoint, discard, notify, ...).
		msgs := (&pg.SelectStmt{}).ProtoReflect().Descriptor().ParentFile().Messages()
		for i := 0; i < msgs.Len(); i++ {
			if name := string(msgs.Get(i).Name()); strings.HasSuffix(name, "Stmt") {
				add(snake(strings.TrimSuffix(name, "Stmt")))
			}
		}
		knownKinds = m
	})
	return knownKinds[k]
}
