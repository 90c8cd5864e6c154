// Package yamlerr turns gopkg.in/yaml.v3 decoding errors into messages for
// the person who wrote the file: file:line, the key as written in YAML, a
// did-you-mean for misspelt keys, and no Go type names.
package yamlerr

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)
	cannot       = regexp.MustCompile(`^line (\d+): cannot unmarshal !!(\w+) (.*) into (\S+)$`)
	syntax       = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// Explain rewrites err, an error of decoding file into root (a pointer to
// the document's Go type), one problem per line. Other errors pass as they
// are, prefixed with file.
func Explain(err error, file string, root any) error {
	if err == nil {
		return nil
	}
	keys := keysByType(reflect.TypeOf(root))
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var msgs []string
		for _, e := range te.Errors {
			msgs = append(msgs, explainOne(e, file, keys))
		}
		return errors.New(strings.Join(msgs, "\n"))
	}
	msg := err.Error()
	if m := syntax.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s:%s: %s", file, m[1], m[2])
	}
	if msg == "EOF" {
		return fmt.Errorf("%s: the file is empty", file)
	}
	return fmt.Errorf("%s: %s", file, strings.TrimPrefix(msg, "yaml: "))
}

func explainOne(e, file string, keys map[string][]string) string {
	if m := unknownField.FindStringSubmatch(e); m != nil {
		known := keys[m[3]]
		msg := fmt.Sprintf("%s:%s: unknown key %q", file, m[1], m[2])
		if s := Closest(m[2], known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		} else if len(known) > 0 {
			msg += " (known here: " + strings.Join(known, ", ") + ")"
		}
		return msg
	}
	if m := cannot.FindStringSubmatch(e); m != nil {
		return fmt.Sprintf("%s:%s: want %s, got %s %s", file, m[1], yamlKind(m[4]), article(m[2]), m[3])
	}
	return file + ": " + strings.TrimPrefix(e, "yaml: ")
}

// yamlKind names a Go type the way a YAML author thinks of it.
func yamlKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case strings.Contains(goType, "."):
		return "a mapping"
	}
	return goType
}

func article(tag string) string {
	switch tag {
	case "str":
		return "the string"
	case "int", "float":
		return "the number"
	case "bool":
		return "the boolean"
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	}
	return "a " + tag
}

// keysByType lists the YAML keys of every struct type reachable from t,
// by the name yaml.v3 prints ("profile.Profile").
func keysByType(t reflect.Type) map[string][]string {
	out := map[string][]string{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map || t.Kind() == reflect.Array {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		if _, seen := out[t.String()]; seen {
			return
		}
		out[t.String()] = nil
		var keys []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			if strings.Contains(opts, "inline") {
				walk(f.Type)
				keys = append(keys, out[f.Type.String()]...)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			keys = append(keys, name)
			walk(f.Type)
		}
		sort.Strings(keys)
		out[t.String()] = keys
	}
	if t != nil {
		walk(t)
	}
	return out
}

// Closest returns the known key nearest to s, if near enough to be a typo
// (at most two edits, and no more than a third of its letters).
func Closest(s string, known []string) string {
	best, bestD := "", min(2, len(s)/3)+1
	for _, k := range known {
		if d := distance(strings.ToLower(s), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the optimal-string-alignment distance: insertions,
// deletions, substitutions and swaps of neighbours each count one.
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
