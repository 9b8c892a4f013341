package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// printer writes the demo's progress: a line per step, details indented under it.
type printer struct {
	w io.Writer
}

func newPrinter(w io.Writer) *printer {
	return &printer{w: w}
}

func (p *printer) step(format string, args ...any) {
	fmt.Fprintf(p.w, "==> "+format+"\n", args...)
}

func (p *printer) detail(format string, args ...any) {
	text := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	for _, line := range strings.Split(text, "\n") {
		fmt.Fprintf(p.w, "    %s\n", line)
	}
}

// compactJSON returns body on one line when it is JSON, else as it is.
func compactJSON(body []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, body) != nil {
		return strings.TrimSpace(string(body))
	}
	return buf.String()
}
