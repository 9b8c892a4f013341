package filter

import (
	"bytes"
	"encoding/json"
	"errors"
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
// (which is '"'), and whether it holds an escape.
func skipString(b []byte, i int) (int, bool, error) {
	for j := i + 1; ; {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, false, errJSON
		}
		q := j + k
		// A quote after an odd run of backslashes is part of the string.
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, bytes.IndexByte(b[i+1:q], '\\') >= 0, nil
		}
		j = q + 1
	}
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return 0, errJSON
	}
	switch b[i] {
	case '"':
		end, _, err := skipString(b, i)
		return end, err
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, _, err := skipString(b, i)
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

// objectField returns the raw value of key in the JSON object b, or nil
// when the object has no such key. The last occurrence wins, as in
// encoding/json; keys are compared exactly. A null is an object without
// keys, as encoding/json reads it into a map or struct.
func objectField(b []byte, key string) ([]byte, error) {
	if jsonNull(b) {
		return nil, nil
	}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, errJSON
	}
	var found []byte
	for i++; ; {
		i = skipSpace(b, i)
		if i < len(b) && b[i] == '}' {
			return found, nil
		}
		if i >= len(b) || b[i] != '"' {
			return nil, errJSON
		}
		end, escaped, err := skipString(b, i)
		if err != nil {
			return nil, err
		}
		match := string(b[i+1:end-1]) == key
		if escaped {
			var k string
			if err := json.Unmarshal(b[i:end], &k); err != nil {
				return nil, err
			}
			match = k == key
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, errJSON
		}
		vstart := skipSpace(b, i+1)
		vend, err := skipValue(b, vstart)
		if err != nil {
			return nil, err
		}
		if match {
			found = b[vstart:vend]
		}
		i = skipSpace(b, vend)
		if i < len(b) && b[i] == ',' {
			i++
			continue
		}
		if i < len(b) && b[i] == '}' {
			return found, nil
		}
		return nil, errJSON
	}
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

// ContainerFacts reads what a decision needs from a container inspect
// answer: ID, name and labels.
func ContainerFacts(inspect []byte) (id, name string, labels map[string]string, err error) {
	if err = decodeField(inspect, "Id", &id); err != nil {
		return
	}
	if err = decodeField(inspect, "Name", &name); err != nil {
		return
	}
	cfg, err := objectField(inspect, "Config")
	if err != nil || cfg == nil || string(cfg) == "null" {
		return
	}
	err = decodeField(cfg, "Labels", &labels)
	return
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
	if len(raw) >= 2 && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true, nil
	}
	var s string
	err = json.Unmarshal(raw, &s)
	return s, err == nil, err
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
