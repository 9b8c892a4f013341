package filter

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Pos is a position in the policy file. A struct field of this type named
// Pos is filled with the position of the YAML node the struct came from.
type Pos struct {
	Line   int
	Column int
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Column) }

// Problem is one mistake found in a policy file, at a position.
type Problem struct {
	Pos     Pos
	Message string
	// Warning marks a rule that is valid but wider than it looks.
	Warning bool
}

func (p Problem) Error() string {
	if p.Pos.Line == 0 {
		return p.Message
	}
	return fmt.Sprintf("line %d, column %d: %s", p.Pos.Line, p.Pos.Column, p.Message)
}

// Problems is every mistake found in a policy file, in file order.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// nodeDecoder is implemented by policy types that accept more than one YAML
// shape (a scalar or a mapping, say).
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node)
}

// decoder turns a YAML node tree into policy structs strictly: unknown keys,
// wrong types and duplicate keys are problems, all of them collected with
// their positions instead of stopping at the first.
type decoder struct {
	problems Problems
	// pos records where each decoded value came from, keyed by its address,
	// so that later checks can point at list items and scalars too.
	pos map[any]Pos
}

func (d *decoder) fail(n *yaml.Node, format string, args ...any) {
	d.problems = append(d.problems, Problem{Pos: posOf(n), Message: fmt.Sprintf(format, args...)})
}

func posOf(n *yaml.Node) Pos { return Pos{Line: n.Line, Column: n.Column} }

var (
	posType      = reflect.TypeOf(Pos{})
	durationType = reflect.TypeOf(time.Duration(0))
	decoderType  = reflect.TypeOf((*nodeDecoder)(nil)).Elem()
)

func (d *decoder) decode(n *yaml.Node, v reflect.Value) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.CanAddr() && d.pos != nil {
		d.pos[v.Addr().Interface()] = posOf(n)
	}
	if v.CanAddr() && v.Addr().Type().Implements(decoderType) {
		v.Addr().Interface().(nodeDecoder).decodeNode(d, n)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		d.decode(n, v.Elem())
	case reflect.Struct:
		d.decodeStruct(n, v)
	case reflect.Map:
		d.decodeMap(n, v)
	case reflect.Slice:
		d.decodeSlice(n, v)
	case reflect.String:
		if s, ok := d.scalar(n, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		d.decodeBool(n, v)
	case reflect.Int, reflect.Int64:
		d.decodeInt(n, v)
	case reflect.Float64:
		if s, ok := d.scalar(n, "a number"); ok {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				d.fail(n, "%q is not a number", s)
				return
			}
			v.SetFloat(f)
		}
	default:
		panic(fmt.Sprintf("filter: policy field of unsupported kind %s", v.Kind()))
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// scalar returns the text of a scalar node, or records a problem naming what
// was expected.
func (d *decoder) scalar(n *yaml.Node, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.fail(n, "expected %s, found %s", want, kindName(n))
		return "", false
	}
	return n.Value, true
}

func kindName(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "nothing"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func (d *decoder) decodeBool(n *yaml.Node, v reflect.Value) {
	s, ok := d.scalar(n, "true or false")
	if !ok {
		return
	}
	switch s {
	case "true":
		v.SetBool(true)
	case "false":
		v.SetBool(false)
	default:
		d.fail(n, "expected true or false, found %q", s)
	}
}

func (d *decoder) decodeInt(n *yaml.Node, v reflect.Value) {
	if v.Type() == durationType {
		s, ok := d.scalar(n, "a duration such as 30s")
		if !ok {
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil || dur < 0 {
			d.fail(n, "%q is not a duration such as 30s", s)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	s, ok := d.scalar(n, "a whole number")
	if !ok {
		return
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.fail(n, "%q is not a whole number", s)
		return
	}
	v.SetInt(i)
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, "expected a list, found %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		if isNull(item) && s.Index(i).Kind() == reflect.Pointer {
			d.fail(item, "list item %d has no value", i+1)
			continue
		}
		d.decode(item, s.Index(i))
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, "expected a mapping, found %s", kindName(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, ok := d.scalar(k, "a key")
		if !ok {
			continue
		}
		if m.MapIndex(reflect.ValueOf(key)).IsValid() {
			d.fail(k, "duplicate key %q", key)
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		if isNull(val) && elem.Kind() == reflect.Pointer {
			d.fail(k, "%q has no value", key)
			continue
		}
		d.decode(val, elem)
		m.SetMapIndex(reflect.ValueOf(key), elem)
	}
	v.Set(m)
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, "expected a mapping, found %s", kindName(n))
		return
	}
	t := v.Type()
	fields := make(map[string]int, t.NumField())
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type == posType && f.Name == "Pos" {
			v.Field(i).Set(reflect.ValueOf(posOf(n)))
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = i
		names = append(names, name)
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, ok := d.scalar(k, "a key")
		if !ok {
			continue
		}
		idx, known := fields[key]
		switch {
		case !known:
			d.fail(k, "unknown key %q (known here: %s)", key, strings.Join(names, ", "))
		case seen[key]:
			d.fail(k, "duplicate key %q", key)
		default:
			seen[key] = true
			d.decode(val, v.Field(idx))
		}
	}
}

// parseYAML parses one YAML document into its root node.
func parseYAML(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlSyntaxProblem(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, Problems{{Message: "the policy file is empty"}}
	}
	return doc.Content[0], nil
}

// yamlSyntaxProblem turns a yaml.v3 syntax error ("yaml: line 3: ...") into a
// Problem with a position.
func yamlSyntaxProblem(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var p Problem
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		num, text, found := strings.Cut(rest, ": ")
		if line, convErr := strconv.Atoi(num); found && convErr == nil {
			// yaml.v3 numbers the lines of parser errors that carry a
			// context ("did not find expected ...") from zero; its other
			// errors count from one.
			if strings.HasPrefix(text, "did not find expected") {
				line++
			}
			p.Pos = Pos{Line: line, Column: 1}
			msg = text
		}
	}
	p.Message = "YAML syntax: " + msg
	return Problems{p}
}

// errProblems extracts Problems from an error returned by this package.
func errProblems(err error) (Problems, bool) {
	var ps Problems
	ok := errors.As(err, &ps)
	return ps, ok
}
