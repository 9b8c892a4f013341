package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
)

// The daemon's answers can be large (an inspect is several kilobytes, a
// list many times that) while a decision needs a few fields of them. These
// functions find a field's raw value in one pass without decoding the
// rest; the field itself is then decoded with encoding/json.

var errJSON = errors.New("malformed JSON")

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i]
// (which is '"').
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; ; {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, errJSON
		}
		q := j + k
		// A quote after an odd run of backslashes is part of the string.
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, nil
		}
		j = q + 1
	}
}

// encoded reports whether the bytes of a JSON string (between its quotes)
// differ from its value: an escape, or bytes that are not UTF-8, which
// encoding/json reads as U+FFFD.
func encoded(s []byte) bool {
	return bytes.IndexByte(s, '\\') >= 0 || !utf8.Valid(s)
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return 0, errJSON
	}
	switch b[i] {
	case '"':
		end, err := skipString(b, i)
		return end, err
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, errJSON
	}
	start := i
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if i == start {
				return 0, errJSON
			}
			return i, nil
		}
		i++
	}
	if i == start {
		return 0, errJSON
	}
	return i, nil
}

// jsonNull reports whether the JSON document b is null, which encoding/json
// reads into a map, struct or slice as empty.
func jsonNull(b []byte) bool {
	i := skipSpace(b, 0)
	return len(b)-i >= 4 && string(b[i:i+4]) == "null" && skipSpace(b, i+4) == len(b)
}

// jsonKey is a key of a JSON object as it appears in the document: its
// bytes between the quotes, and whether they differ from its value.
type jsonKey struct {
	raw     []byte
	encoded bool
}

// is reports whether the key is s, compared exactly after unescaping.
func (k jsonKey) is(s string) bool {
	if !k.encoded {
		return string(k.raw) == s
	}
	return k.String() == s
}

// String is the key decoded ("" when an escape is invalid, which
// objectMembers has already refused).
func (k jsonKey) String() string {
	if !k.encoded {
		return string(k.raw)
	}
	var s string
	_ = json.Unmarshal(append(append([]byte{'"'}, k.raw...), '"'), &s)
	return s
}

// objectMembers calls fn with each key of the JSON object b and the raw
// bytes of its value, in document order, in one pass. A null is an object
// without keys, as encoding/json reads it into a map or struct.
func objectMembers(b []byte, fn func(k jsonKey, v []byte)) error {
	if jsonNull(b) {
		return nil
	}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errJSON
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return errJSON
		}
		end, err := skipString(b, i)
		if err != nil {
			return err
		}
		k := jsonKey{raw: b[i+1 : end-1]}
		if k.encoded = encoded(k.raw); k.encoded && !json.Valid(b[i:end]) {
			return errJSON
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return errJSON
		}
		vstart := skipSpace(b, i+1)
		vend, err := skipValue(b, vstart)
		if err != nil {
			return err
		}
		fn(k, b[vstart:vend])
		i = skipSpace(b, vend)
		if i < len(b) && b[i] == '}' {
			return nil
		}
		if i >= len(b) || b[i] != ',' {
			return errJSON
		}
		i = skipSpace(b, i+1)
	}
}

// objectField returns the raw value of key in the JSON object b, or nil
// when the object has no such key. The last occurrence wins, as in
// encoding/json; keys are compared exactly.
func objectField(b []byte, key string) ([]byte, error) {
	var found []byte
	err := objectMembers(b, func(k jsonKey, v []byte) {
		if k.is(key) {
			found = v
		}
	})
	if err != nil {
		return nil, err
	}
	return found, nil
}

// arrayElements calls fn with the raw bytes of each element of the JSON
// array b. A null is an array without elements.
func arrayElements(b []byte, fn func([]byte) error) error {
	if jsonNull(b) {
		return nil
	}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return errJSON
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil
	}
	for {
		end, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(b[skipSpace(b, i):end]); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ']' {
			return nil
		}
		if i >= len(b) || b[i] != ',' {
			return errJSON
		}
		i++
	}
}

// decodeField decodes the value of key in object b into v; a missing key
// leaves v as it is.
func decodeField(b []byte, key string, v any) error {
	raw, err := objectField(b, key)
	if err != nil || raw == nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// containerFields are the raw fields of a container answer (an inspect
// answer or an element of a list) that decisions and narrowing read. An
// absent field is nil.
type containerFields struct {
	id, name, names, config, labels, execIDs, networkSettings, hostConfig []byte
}

// scanContainer finds the fields of a container answer in one pass over
// its top level; the last occurrence of a key wins.
func scanContainer(b []byte) (containerFields, error) {
	var f containerFields
	err := objectMembers(b, func(k jsonKey, v []byte) {
		switch {
		case k.is("Id"):
			f.id = v
		case k.is("Name"):
			f.name = v
		case k.is("Names"):
			f.names = v
		case k.is("Config"):
			f.config = v
		case k.is("Labels"):
			f.labels = v
		case k.is("ExecIDs"):
			f.execIDs = v
		case k.is("NetworkSettings"):
			f.networkSettings = v
		case k.is("HostConfig"):
			f.hostConfig = v
		}
	})
	return f, err
}

// ReadContainer reads what a decision needs from a container inspect
// answer: ID, name and labels. The answer is kept for narrowing, with
// what was found of it.
func ReadContainer(inspect []byte) (*Container, error) {
	f, err := scanContainer(inspect)
	if err != nil {
		return nil, err
	}
	c := &Container{Inspect: inspect, fields: &f}
	if c.ID, _, err = stringValue(f.id); err != nil {
		return nil, err
	}
	if c.Name, _, err = stringValue(f.name); err != nil {
		return nil, err
	}
	c.Name = strings.TrimPrefix(c.Name, "/")
	if f.config != nil {
		labels, err := objectField(f.config, "Labels")
		if err != nil {
			return nil, err
		}
		if c.Labels, err = stringMap(labels); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// ReadContainerList reads the ID, names and labels of each entry of a
// container list answer.
func ReadContainerList(list []byte) ([]*Container, error) {
	var out []*Container
	err := arrayElements(list, func(elem []byte) error {
		f, err := scanContainer(elem)
		if err != nil {
			return err
		}
		c := &Container{}
		if c.ID, _, err = stringValue(f.id); err != nil {
			return err
		}
		if c.Labels, err = stringMap(f.labels); err != nil {
			return err
		}
		if f.names != nil {
			if err := json.Unmarshal(f.names, &c.Names); err != nil {
				return err
			}
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// stringValue decodes a raw JSON string, and reports whether there was
// a value: nil (an absent field) is "" and false; null is "" and true, as
// encoding/json sets a map entry it reads as null.
func stringValue(raw []byte) (string, bool, error) {
	if raw == nil {
		return "", false, nil
	}
	if jsonNull(raw) {
		return "", true, nil
	}
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && !encoded(raw[1:len(raw)-1]) {
		return string(raw[1 : len(raw)-1]), true, nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err == nil, err
}

// stringMap decodes a JSON object of strings (labels), as encoding/json
// would into a map[string]string: nil for an absent field or null, an
// error for a value that is not a string.
func stringMap(raw []byte) (map[string]string, error) {
	if raw == nil || jsonNull(raw) {
		return nil, nil
	}
	m := map[string]string{}
	var bad error
	err := objectMembers(raw, func(k jsonKey, v []byte) {
		s, _, err := stringValue(v)
		if err != nil {
			bad = err
			return
		}
		m[k.String()] = s
	})
	if err != nil {
		return nil, err
	}
	return m, bad
}

// StringField reads a string field of a JSON object ("" when absent).
func StringField(b []byte, key string) (string, error) {
	s, _, err := stringField(b, key)
	return s, err
}

// stringField reads a string field and reports whether it is present.
func stringField(b []byte, key string) (string, bool, error) {
	raw, err := objectField(b, key)
	if err != nil || raw == nil {
		return "", false, err
	}
	return stringValue(raw)
}

// rawLabels is a Labels object of an answer, read one key at a time.
type rawLabels []byte

func (r rawLabels) get(key string) (string, bool) {
	if len(r) == 0 || string(r) == "null" {
		return "", false
	}
	v, ok, err := stringField(r, key)
	return v, ok && err == nil
}
