package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
)

// maxJSONDepth bounds the nesting of request bodies. Engine API bodies nest
// four or five levels; anything deeper is an attack on a parser.
const maxJSONDepth = 32

// decodeStrict decodes a JSON body into v (a pointer to an Engine API type)
// and refuses everything the daemon could read differently from what sockpin
// checks: keys that match a field only case-insensitively (the daemon's
// decoder would accept them), duplicate keys (the daemon keeps the last),
// unknown fields, and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := checkValue(dec, reflect.TypeOf(v).Elem(), "", 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("body has data after the JSON value")
	}
	dec = json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body does not decode: %v", err)
	}
	return nil
}

var unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

// checkValue reads one JSON value from dec and checks its object keys
// against type t.
func checkValue(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("body nests deeper than %d levels", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("body is not valid JSON: %v", err)
	}
	delim, ok := tok.(json.Delim)
	if !ok || delim == '}' || delim == ']' {
		return nil
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// Types that decode themselves, and untyped values, have no field list
	// to hold keys against; duplicates are still refused.
	if t != nil && (reflect.PointerTo(t).Implements(unmarshalerType) || t.Kind() == reflect.Interface) {
		t = nil
	}
	if delim == '[' {
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := checkValue(dec, elem, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
		_, err := dec.Token()
		return err
	}
	return checkObject(dec, t, path, depth)
}

func checkObject(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	var fields map[string]reflect.Type
	if t != nil && t.Kind() == reflect.Struct {
		fields = jsonFields(t)
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("body is not valid JSON: %v", err)
		}
		key := tok.(string)
		name := joinPath(path, key)
		if seen[key] {
			return fmt.Errorf("body repeats key %q", name)
		}
		seen[key] = true
		var next reflect.Type
		switch {
		case fields != nil:
			ft, ok := fields[key]
			if !ok {
				return fmt.Errorf("body has unknown field %q", name)
			}
			next = ft
		case t != nil && t.Kind() == reflect.Map:
			next = t.Elem()
		case t != nil:
			return fmt.Errorf("body has an object where %q expects %s", path, t.Kind())
		}
		if err := checkValue(dec, next, name, depth+1); err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return err
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields lists the exact JSON keys of a struct type as encoding/json
// names them, with promoted fields of embedded structs.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	out := make(map[string]reflect.Type)
	collectFields(t, out)
	fieldCache.Store(t, out)
	return out
}

func collectFields(t reflect.Type, out map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collectFields(ft, out)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
}

// emptyMeansSomething lists the fields for which the daemon reads an empty
// list differently from none: an empty MaskedPaths or ReadonlyPaths turns
// the default masking off. Everywhere else [] and null mean the same.
var emptyMeansSomething = map[string]bool{"MaskedPaths": true, "ReadonlyPaths": true}

// firstSet returns the dotted path (in JSON key names) of the first field
// of v that is set, or "" when every field is empty. A nil pointer and a
// nil or empty map or slice are empty, except the fields of
// emptyMeansSomething, where [] is set; a pointer to anything is set.
func firstSet(v reflect.Value, path string) string {
	if set := setFields(v, path, "", 1); len(set) > 0 {
		return set[0]
	}
	return ""
}

// setFields lists up to max set fields of v (see firstSet).
func setFields(v reflect.Value, path, field string, max int) []string {
	switch v.Kind() {
	case reflect.Struct:
		var out []string
		t := v.Type()
		for i := 0; i < v.NumField() && len(out) < max; i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := jsonName(f)
			child := joinPath(path, name)
			if f.Anonymous {
				child = path
			}
			out = append(out, setFields(v.Field(i), child, name, max-len(out))...)
		}
		return out
	case reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return setFields(v.Elem(), path, field, max)
	case reflect.Pointer:
		// A pointer says the field was given, even with a zero value: the
		// daemon tells null from 0 or false for these fields.
		if v.IsNil() {
			return nil
		}
		return []string{path}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if len(setFields(v.Index(i), path, field, 1)) > 0 {
				return []string{path}
			}
		}
		return nil
	}
	empty := false
	switch v.Kind() {
	case reflect.Map:
		empty = v.Len() == 0
	case reflect.Slice:
		empty = v.IsNil() || v.Len() == 0 && !emptyMeansSomething[field]
	default:
		empty = v.IsZero()
	}
	if empty {
		return nil
	}
	return []string{path}
}

// jsonName is the key encoding/json uses for a struct field.
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" || name == "-" {
		return f.Name
	}
	return name
}
