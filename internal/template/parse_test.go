package template

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Instruction // Flags nil means no flags
	}{
		{
			name: "every supported instruction",
			in: `# syntax=docker/dockerfile:1
# check=skip=all
ARG BASE=base
FROM ${BASE} AS build
arg VERSION=1.0
ENV A=1 B="two words"
ENV LEGACY value with spaces
LABEL org.example.x="y" z=w
EXPOSE 8000/tcp 9000
WORKDIR /app
USER user:user
COPY --chown=user:user --chmod=755 a.sh b.sh ./bin/
COPY ["with space.txt", "/dst/"]
ADD --link pkg.tar.gz /opt/
RUN echo shell form
RUN ["/bin/echo", "exec", "form"]
CMD ["python3", "app.py"]
ENTRYPOINT /entry.sh
`,
			want: []Instruction{
				{Line: 3, Cmd: "ARG", Args: "BASE=base"},
				{Line: 4, Cmd: "FROM", Args: "${BASE} AS build"},
				{Line: 5, Cmd: "ARG", Args: "VERSION=1.0"},
				{Line: 6, Cmd: "ENV", Args: `A=1 B="two words"`},
				{Line: 7, Cmd: "ENV", Args: "LEGACY value with spaces"},
				{Line: 8, Cmd: "LABEL", Args: `org.example.x="y" z=w`},
				{Line: 9, Cmd: "EXPOSE", Args: "8000/tcp 9000"},
				{Line: 10, Cmd: "WORKDIR", Args: "/app"},
				{Line: 11, Cmd: "USER", Args: "user:user"},
				{Line: 12, Cmd: "COPY", Flags: map[string]string{"chown": "user:user", "chmod": "755"}, Args: "a.sh b.sh ./bin/"},
				{Line: 13, Cmd: "COPY", Args: `["with space.txt", "/dst/"]`, JSON: []string{"with space.txt", "/dst/"}},
				{Line: 14, Cmd: "ADD", Flags: map[string]string{"link": ""}, Args: "pkg.tar.gz /opt/"},
				{Line: 15, Cmd: "RUN", Args: "echo shell form"},
				{Line: 16, Cmd: "RUN", Args: `["/bin/echo", "exec", "form"]`, JSON: []string{"/bin/echo", "exec", "form"}},
				{Line: 17, Cmd: "CMD", Args: `["python3", "app.py"]`, JSON: []string{"python3", "app.py"}},
				{Line: 18, Cmd: "ENTRYPOINT", Args: "/entry.sh"},
			},
		},
		{
			name: "continuations, with comments and blank lines inside",
			in:   "FROM base\nRUN apt-get update && \\\n    # a comment inside\n\n    apt-get install -y jq \\\n  && echo done\nENV X=1\n",
			want: []Instruction{
				{Line: 1, Cmd: "FROM", Args: "base"},
				{Line: 2, Cmd: "RUN", Args: "apt-get update &&     apt-get install -y jq   && echo done"},
				{Line: 7, Cmd: "ENV", Args: "X=1"},
			},
		},
		{
			name: "escape directive, CRLF, tabs and a trailing continuation",
			in:   "# escape=`\r\nFROM\tbase\r\nRUN echo a `\r\n b\r\nRUN echo c `",
			want: []Instruction{
				{Line: 2, Cmd: "FROM", Args: "base"},
				{Line: 3, Cmd: "RUN", Args: "echo a  b"},
				{Line: 5, Cmd: "RUN", Args: "echo c"},
			},
		},
		{
			name: "invalid JSON is the shell form",
			in:   "FROM base\nRUN [not json\nCMD []\n",
			want: []Instruction{
				{Line: 1, Cmd: "FROM", Args: "base"},
				{Line: 2, Cmd: "RUN", Args: "[not json"},
				{Line: 3, Cmd: "CMD", Args: "[]", JSON: []string{}},
			},
		},
		{
			name: "a directive after the first line is a comment",
			in:   "FROM base\n# escape=`\nRUN echo a \\\n b\n",
			want: []Instruction{
				{Line: 1, Cmd: "FROM", Args: "base"},
				{Line: 3, Cmd: "RUN", Args: "echo a  b"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			df, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				if tc.want[i].Flags == nil {
					tc.want[i].Flags = map[string]string{}
				}
			}
			if !reflect.DeepEqual(df.Instructions, tc.want) {
				t.Errorf("got\n%+v\nwant\n%+v", df.Instructions, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		msg      string
	}{
		{"HEALTHCHECK", "FROM base\nRUN true\nHEALTHCHECK CMD curl localhost\n", 3, "HEALTHCHECK: not supported"},
		{"ONBUILD", "FROM base\nONBUILD RUN x\n", 2, "ONBUILD: not supported"},
		{"VOLUME", "FROM base\n\nVOLUME /data\n", 3, "VOLUME: not supported"},
		{"STOPSIGNAL", "FROM base\nSTOPSIGNAL SIGTERM\n", 2, "STOPSIGNAL"},
		{"SHELL", "FROM base\nSHELL [\"/bin/bash\", \"-c\"]\n", 2, "SHELL"},
		{"MAINTAINER", "FROM base\nMAINTAINER me\n", 2, "MAINTAINER"},
		{"unknown", "FROM base\nRUN a \\\n  b\nFROBNICATE x\n", 4, "FROBNICATE: unknown instruction"},
		{"line of a continued instruction", "FROM base\nRUN a \\\n  b\nVOLUME \\\n /x\n", 4, "VOLUME"},
		{"no FROM", "RUN echo\n", 1, "comes before FROM"},
		{"empty", "# nothing\n", 1, "no FROM"},
		{"two stages", "FROM base AS a\nRUN x\nFROM base\n", 3, "multi-stage"},
		{"RUN --mount", "FROM base\nRUN --mount=type=cache,target=/x true\n", 2, "flag --mount=type=cache,target=/x is not supported"},
		{"COPY --from", "FROM base\nCOPY --from=build /a /b\n", 2, "flag --from is not supported"},
		{"heredoc", "FROM base\nRUN <<EOF\necho hi\nEOF\n", 2, "heredocs"},
		{"missing arguments", "FROM base\nWORKDIR\n", 2, "WORKDIR: needs at least one argument"},
		{"bad escape", "# escape=x\nFROM base\n", 1, "invalid escape directive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in)
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want a *SyntaxError", err)
			}
			if se.Line != tc.line || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %q (line %d), want line %d and %q", err, se.Line, tc.line, tc.msg)
			}
		})
	}
}

func TestWords(t *testing.T) {
	env := map[string]string{"HOME": "/root", "EMPTY": "", "NAME": "world", "SP": "a b"}
	lx := wordLexer{escape: '\\', vars: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	tests := []struct {
		in    string
		word  string
		words []string
		err   string
	}{
		{in: "$HOME/x", word: "/root/x", words: []string{"/root/x"}},
		{in: "${HOME}x ${NAME}", word: "/rootx world", words: []string{"/rootx", "world"}},
		{in: `'$HOME' "$HOME" \$HOME`, word: "$HOME /root $HOME", words: []string{"$HOME", "/root", "$HOME"}},
		{in: `"a b" c\ d`, word: "a b c d", words: []string{"a b", "c d"}},
		{in: "${UNSET:-def} ${EMPTY:-def} ${EMPTY-def}", word: "def def ", words: []string{"def", "def"}},
		{in: "${NAME:+alt} ${UNSET:+alt}x ${EMPTY+set}", word: "alt x set", words: []string{"alt", "x", "set"}},
		{in: "${UNSET:-${NAME}}", word: "world", words: []string{"world"}},
		{in: "$SP", word: "a b", words: []string{"a b"}},
		{in: "cost: $5 and $", word: "cost: $5 and $", words: []string{"cost:", "$5", "and", "$"}},
		{in: `"quote \" inside"`, word: `quote " inside`, words: []string{`quote " inside`}},
		{in: "${UNSET:?must be set}", err: "UNSET: must be set"},
		{in: "'open", err: "unterminated"},
		{in: "${HOME", err: "unterminated"},
		{in: "${}", err: "bad substitution"},
		{in: "${HOME/x/y}", err: "unsupported substitution"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			w, err := lx.word(tc.in)
			ws, werr := lx.words(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || werr == nil {
					t.Fatalf("got %q, %v; want error %q", w, err, tc.err)
				}
				return
			}
			if err != nil || werr != nil {
				t.Fatal(err, werr)
			}
			if w != tc.word || !reflect.DeepEqual(ws, tc.words) {
				t.Errorf("word %q words %q; want %q %q", w, ws, tc.word, tc.words)
			}
		})
	}
}

func TestKeyValues(t *testing.T) {
	lx := wordLexer{escape: '\\', vars: func(k string) (string, bool) { return "V", k == "X" }}
	tests := []struct {
		args            string
		bare, legacy    bool
		want            []keyValue
		wantErrContains string
	}{
		{args: `A=1 B="two words" C=$X`, legacy: true, want: []keyValue{{"A", "1", true}, {"B", "two words", true}, {"C", "V", true}}},
		{args: "KEY value with $X", legacy: true, want: []keyValue{{"KEY", "value with V", true}}},
		{args: "NAME", bare: true, want: []keyValue{{"NAME", "", false}}},
		{args: "A=1 NAME B=", bare: true, want: []keyValue{{"A", "1", true}, {"NAME", "", false}, {"B", "", true}}},
		{args: "A=1 NAME", wantErrContains: `"NAME" is not KEY=VALUE`},
		{args: "=x", bare: true, wantErrContains: "empty name"},
	}
	for _, tc := range tests {
		got, err := lx.keyValues(tc.args, tc.bare, tc.legacy)
		if tc.wantErrContains != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrContains) {
				t.Errorf("%q: got %v, want error %q", tc.args, err, tc.wantErrContains)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v %v, want %+v", tc.args, got, err, tc.want)
		}
	}
}
