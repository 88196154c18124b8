package interpreter

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
)

// The stream's line types (the "type" field).
const (
	LineStdout             = "stdout"
	LineStderr             = "stderr"
	LineResult             = "result"
	LineError              = "error"
	LineNumberOfExecutions = "number_of_executions"
	LineKeepalive          = "keepalive"
	LineEndOfExecution     = "end_of_execution"
)

// streamLine is a stdout or stderr line.
type streamLine struct {
	Type      string `json:"type"`
	Text      string `json:"text"`
	Timestamp string `json:"timestamp,omitempty"`
}

// errorLine is an error of the user's code, or one the server makes.
type errorLine struct {
	Type      string `json:"type"`
	Name      string `json:"name"`
	Value     string `json:"value"`
	Traceback string `json:"traceback"`
}

// countLine is the execution count of the cell.
type countLine struct {
	Type           string `json:"type"`
	ExecutionCount int    `json:"execution_count"`
}

// resultLine is a result: the fields of a MIME bundle the clients know, and the
// rest in extra. Absent MIME types are omitted.
type resultLine struct {
	Type         string          `json:"type"`
	Text         *string         `json:"text,omitempty"`
	HTML         *string         `json:"html,omitempty"`
	Markdown     *string         `json:"markdown,omitempty"`
	SVG          *string         `json:"svg,omitempty"`
	PNG          *string         `json:"png,omitempty"`
	JPEG         *string         `json:"jpeg,omitempty"`
	PDF          *string         `json:"pdf,omitempty"`
	LaTeX        *string         `json:"latex,omitempty"`
	JSON         json.RawMessage `json:"json,omitempty"`
	JavaScript   *string         `json:"javascript,omitempty"`
	Data         json.RawMessage `json:"data,omitempty"`
	Chart        json.RawMessage `json:"chart,omitempty"`
	Extra        map[string]any  `json:"extra"`
	IsMainResult bool            `json:"is_main_result"`
}

// stringFields maps the MIME types kept as strings to their result fields.
var stringFields = map[string]func(*resultLine) **string{
	"text/plain":             func(r *resultLine) **string { return &r.Text },
	"text/html":              func(r *resultLine) **string { return &r.HTML },
	"text/markdown":          func(r *resultLine) **string { return &r.Markdown },
	"image/svg+xml":          func(r *resultLine) **string { return &r.SVG },
	"image/png":              func(r *resultLine) **string { return &r.PNG },
	"image/jpeg":             func(r *resultLine) **string { return &r.JPEG },
	"application/pdf":        func(r *resultLine) **string { return &r.PDF },
	"text/latex":             func(r *resultLine) **string { return &r.LaTeX },
	"application/javascript": func(r *resultLine) **string { return &r.JavaScript },
}

// Shaped is what one iopub message becomes on the stream.
type Shaped struct {
	// Line is the JSON line without its newline; nil when the message has none.
	Line []byte
	// Error is set for an error line.
	Error bool
}

// ShapeIOPub turns an iopub message of an execution into its stream line.
// Messages the clients have no line for (status, clear_output, comms...) give
// an empty Shaped.
func ShapeIOPub(m *Message) Shaped {
	switch m.Header.MsgType {
	case "stream":
		var c struct {
			Name string `json:"name"`
			Text string `json:"text"`
		}
		if json.Unmarshal(m.Content, &c) != nil {
			return Shaped{}
		}
		typ := LineStdout
		if c.Name == "stderr" {
			typ = LineStderr
		}
		return Shaped{Line: marshal(streamLine{Type: typ, Text: c.Text, Timestamp: m.Header.Date})}
	case "execute_input":
		var c struct {
			Count int `json:"execution_count"`
		}
		if json.Unmarshal(m.Content, &c) != nil {
			return Shaped{}
		}
		return Shaped{Line: marshal(countLine{Type: LineNumberOfExecutions, ExecutionCount: c.Count})}
	case "execute_result", "display_data":
		var c struct {
			Data map[string]json.RawMessage `json:"data"`
		}
		if json.Unmarshal(m.Content, &c) != nil {
			return Shaped{}
		}
		return Shaped{Line: marshal(shapeResult(c.Data, m.Header.MsgType == "execute_result"))}
	case "error":
		var c struct {
			EName     string   `json:"ename"`
			EValue    string   `json:"evalue"`
			Traceback []string `json:"traceback"`
		}
		if json.Unmarshal(m.Content, &c) != nil {
			return Shaped{}
		}
		return Shaped{Line: ErrorLine(c.EName, c.EValue, c.Traceback), Error: true}
	}
	return Shaped{}
}

// ErrorLine is the stream line of an error; the traceback's parts are joined by
// newlines without terminal colours.
func ErrorLine(name, value string, traceback []string) []byte {
	tb := make([]string, len(traceback))
	for i, t := range traceback {
		tb[i] = StripANSI(t)
	}
	return marshal(errorLine{Type: LineError, Name: name, Value: StripANSI(value), Traceback: strings.Join(tb, "\n")})
}

// shapeResult maps a MIME bundle to a result line.
func shapeResult(data map[string]json.RawMessage, main bool) resultLine {
	r := resultLine{Type: LineResult, Extra: map[string]any{}, IsMainResult: main}
	for mime, raw := range data {
		if field, ok := stringFields[mime]; ok {
			if s, ok := mimeString(raw); ok {
				if mime == "text/plain" {
					s = stripQuotes(s)
				}
				*field(&r) = &s
			}
			continue
		}
		switch mime {
		case "application/json":
			r.JSON = raw
		case "e2b/data":
			if nonEmpty(raw) {
				r.Data = raw
			}
		case "e2b/chart":
			if nonEmpty(raw) {
				r.Chart = raw
			}
		default:
			var v any
			if json.Unmarshal(raw, &v) == nil {
				r.Extra[mime] = v
			}
		}
	}
	return r
}

// nonEmpty is false for null and for {}.
func nonEmpty(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && !bytes.Equal(t, []byte("null")) && !bytes.Equal(bytes.Join(bytes.Fields(t), nil), []byte("{}"))
}

// mimeString reads a bundle value that is a string or, as nbformat allows, a
// list of strings to concatenate.
func mimeString(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var parts []string
	if json.Unmarshal(raw, &parts) == nil {
		return strings.Join(parts, ""), true
	}
	return "", false
}

// stripQuotes removes one enclosing pair of single or double quotes.
func stripQuotes(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// StripANSI removes terminal escape sequences.
func StripANSI(s string) string { return ansiRE.ReplaceAllString(s, "") }

// marshal encodes a line; the types here always encode.
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		buf.Reset()
		_ = enc.Encode(errorLine{Type: LineError, Name: "EncodingError", Value: err.Error()})
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// simpleLine is a line with only a type.
func simpleLine(typ string) []byte {
	return marshal(struct {
		Type string `json:"type"`
	}{typ})
}
