package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// valueError is a value the file gives that its type cannot read (a
// duration, a size), with where the value is, so Parse can name its field.
type valueError struct {
	Line, Column int
	Err          error
}

func (e *valueError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *valueError) Unwrap() error { return e.Err }

func badValue(n *yaml.Node, format string, args ...any) error {
	return &valueError{Line: n.Line, Column: n.Column, Err: fmt.Errorf(format, args...)}
}

// yamlLineRE finds the line number at the start of the YAML library's
// messages ("line 4: cannot unmarshal …", "line 7: field x not found …").
var yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// fieldErrors turns a decoding error into errors that name the field the
// problem is in, found in the document by the line (and column) the error
// gives: `config: line 4: "forever" is not a duration` becomes
// `config: certs.user_ttl: "forever" is not a duration … (line 4)`.
// It returns nil when err carries no position.
func fieldErrors(doc []byte, err error) Errors {
	var root yaml.Node
	if yaml.Unmarshal(doc, &root) != nil {
		return nil
	}
	var ve *valueError
	if errors.As(err, &ve) {
		if field := pathAt(&root, position(ve.Line, ve.Column)); field != "" {
			return Errors{{Field: field, Err: fmt.Errorf("%w (line %d)", ve.Err, ve.Line)}}
		}
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return nil
	}
	var errs Errors
	for _, msg := range te.Errors {
		m := yamlLineRE.FindStringSubmatch(msg)
		if m == nil {
			return nil
		}
		line, _ := strconv.Atoi(m[1])
		match := position(line, 0)
		if k := yamlFieldRE.FindStringSubmatch(m[2]); k != nil {
			// "field acton not found in type config.Rule": that key on
			// that line, not the first key of the line.
			match = func(n *yaml.Node) bool { return n.Line == line && n.Kind == yaml.ScalarNode && n.Value == k[1] }
		} else if v := yamlValueRE.FindStringSubmatch(m[2]); v != nil {
			// "cannot unmarshal !!str `ssh` into int": the scalar on that
			// line with that value, not the first key of the line.
			match = func(n *yaml.Node) bool { return n.Line == line && n.Kind == yaml.ScalarNode && n.Value == v[1] }
		}
		field := pathAt(&root, match)
		if field == "" {
			return nil
		}
		errs = append(errs, &FieldError{Field: field, Err: fmt.Errorf("%s (line %d)", m[2], line)})
	}
	return errs
}

// yamlFieldRE finds the key in the YAML library's unknown-field messages.
var yamlFieldRE = regexp.MustCompile(`^field (\S+) not found in type `)

// yamlValueRE finds the value in the YAML library's "cannot unmarshal" messages.
var yamlValueRE = regexp.MustCompile("^cannot unmarshal !!\\w+ `(.*)` into ")

// position matches the node at line and column (any column when column is
// 0); with a column, a map or list value matches too, else only scalars and
// keys (a line can hold several of them).
func position(line, column int) func(*yaml.Node) bool {
	return func(n *yaml.Node) bool {
		return n.Line == line && (column == 0 && n.Kind == yaml.ScalarNode || n.Column == column)
	}
}

// pathAt returns the path ("certs.user_ttl", "targets[1].tls.ca_file") of
// the deepest key or value in the document that at matches, or "" when
// there is none.
func pathAt(root *yaml.Node, at func(*yaml.Node) bool) string {
	var walk func(n *yaml.Node, path string) (string, bool)
	walk = func(n *yaml.Node, path string) (string, bool) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p, ok := walk(c, path); ok {
					return p, true
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				kp := k.Value
				if path != "" {
					kp = path + "." + k.Value
				}
				if p, ok := walk(v, kp); ok {
					return p, true
				}
				if at(k) || at(v) {
					return kp, true
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				ip := fmt.Sprintf("%s[%d]", path, i)
				if p, ok := walk(c, ip); ok {
					return p, true
				}
				if at(c) {
					return ip, true
				}
			}
		case yaml.AliasNode:
			// An alias points elsewhere; its value's position is the anchor's.
		}
		return "", false
	}
	p, _ := walk(root, "")
	return p
}

// nullItems finds the empty (null) items of the document's lists: `[~]`,
// `[a, null]`, or a `-` with nothing after it. The YAML library drops them
// when it decodes a list, and an empty list often means "any" (a role's
// databases, the targets whose requests a role may approve, the targets a
// rule applies to), so a list would hold less than the file reads and grant
// more.
func nullItems(doc []byte) Errors {
	var root yaml.Node
	if yaml.Unmarshal(doc, &root) != nil {
		return nil
	}
	var errs Errors
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				kp := n.Content[i].Value
				if path != "" {
					kp = path + "." + kp
				}
				walk(n.Content[i+1], kp)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				ip := fmt.Sprintf("%s[%d]", path, i)
				if c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null" {
					errs = append(errs, &FieldError{Field: ip, Err: fmt.Errorf("an empty item (line %d): YAML would drop it, and the list would hold less than it reads; remove it or give a value", c.Line)})
					continue
				}
				walk(c, ip)
			}
		}
		// An alias is checked where its anchor is.
	}
	walk(&root, "")
	return errs
}
