package template

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// describe renders a step's operation canonically, for comparisons.
func describe(o op) string {
	switch o := o.(type) {
	case *envOp:
		return fmt.Sprintf("ENV %q", o.pairs)
	case *labelOp:
		return fmt.Sprintf("LABEL %q", o.pairs)
	case *argOp:
		return fmt.Sprintf("ARG %+v", o.args)
	case *exposeOp:
		return fmt.Sprintf("EXPOSE %q", o.ports)
	case *workdirOp:
		return "WORKDIR " + o.path
	case *userOp:
		return fmt.Sprintf("USER %s create=%t sudo=%t", o.user, o.create, o.sudo)
	case *cmdOp:
		return fmt.Sprintf("CMD entrypoint=%t shell=%t %q", o.entrypoint, o.shell, o.args)
	case *healthOp:
		return fmt.Sprintf("HEALTHCHECK %q", o.test)
	case *shellOp:
		return fmt.Sprintf("SHELL %q", o.shell)
	case *stopOp:
		return "STOPSIGNAL " + o.signal
	case *volumeOp:
		return fmt.Sprintf("VOLUME %q", o.paths)
	case *runOp:
		var files []string
		for _, f := range o.files {
			files = append(files, f.Name+"="+f.Data)
		}
		return fmt.Sprintf("RUN shell=%t %q files=%q user=%s nonet=%t mounts=%s", o.shell, o.args, files, o.user, o.noNet, o.mounts)
	case *copyOp:
		var contents []string
		for _, c := range o.contents {
			contents = append(contents, fmt.Sprintf("%s=%q expand=%t", c.Path, c.Data, c.Expand))
		}
		return fmt.Sprintf("COPY add=%t from=%s files=%s %q -> %s chown=%s chmod=%s exclude=%q unpack=%s contents=%q",
			o.add, o.from, o.files, o.sources, o.dest, o.chown, o.chmod, o.exclude, unpackOf(o.unpack), contents)
	}
	return fmt.Sprintf("%T", o)
}

// summary renders a parsed Dockerfile: stages, then each step's line and op.
func summary(df *Dockerfile) []string {
	var out []string
	for _, a := range df.MetaArgs {
		out = append(out, fmt.Sprintf("meta %+v", a))
	}
	for _, s := range df.Stages {
		out = append(out, fmt.Sprintf("%d: FROM %s AS %q platform=%q", s.Line, s.From, s.Name, s.Platform))
		for _, st := range s.Steps {
			out = append(out, fmt.Sprintf("%d: %s", st.Line, describe(st.op)))
		}
	}
	return out
}

// TestParse maps every instruction a template can mean to its step.
func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{
			name: "ARG before FROM, stages, COPY --from, ENV forms, LABEL, EXPOSE, USER, WORKDIR",
			in: `# syntax=docker/dockerfile:1
ARG BASE=base
FROM ${BASE} AS Build
ENV A=1 B="two words"
ENV LEGACY value with spaces
LABEL org.example.x="y" z=w
EXPOSE 8000/tcp 9000
WORKDIR /app
USER user:user
FROM --platform=$TARGETPLATFORM base
COPY --from=build --chown=user:user --chmod=755 /app/a.sh /app/b.sh ./bin/
COPY ["with space.txt", "/dst/"]
ADD --link --exclude=*.md pkg.tar.gz /opt/
MAINTAINER someone
`,
			want: []string{
				"meta {Key:BASE Value:base HasValue:true}",
				`3: FROM ${BASE} AS "build" platform=""`,
				`4: ENV [{"A" "1"} {"B" "\"two words\""}]`, // quotes go when the values are expanded
				`5: ENV [{"LEGACY" "value with spaces"}]`,
				`6: LABEL [{"org.example.x" "\"y\""} {"z" "w"}]`,
				`7: EXPOSE ["8000/tcp" "9000"]`,
				"8: WORKDIR /app",
				"9: USER user:user create=false sudo=false",
				`10: FROM base AS "" platform="$TARGETPLATFORM"`,
				`11: COPY add=false from=build files= ["/app/a.sh" "/app/b.sh"] -> ./bin/ chown=user:user chmod=755 exclude=[] unpack=auto contents=[]`,
				`12: COPY add=false from= files= ["with space.txt"] -> /dst/ chown= chmod= exclude=[] unpack=auto contents=[]`,
				`13: COPY add=true from= files= ["pkg.tar.gz"] -> /opt/ chown= chmod= exclude=["*.md"] unpack=auto contents=[]`,
				`14: LABEL [{"maintainer" "someone"}]`,
			},
		},
		{
			name: "RUN forms: shell, exec, heredocs, network, cache and secret mounts",
			in: "FROM base\nRUN echo shell form\nRUN [\"/bin/echo\", \"exec\"]\nRUN <<EOF\necho one\necho two\nEOF\n" +
				"RUN <<-EOT bash -e\n\techo tabs\n\tEOT\nRUN --network=none true\n" +
				"RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=x pip install x\n",
			want: []string{
				`1: FROM base AS "" platform=""`,
				`2: RUN shell=true ["echo shell form"] files=[] user= nonet=false mounts=`,
				`3: RUN shell=false ["/bin/echo" "exec"] files=[] user= nonet=false mounts=`,
				`4: RUN shell=true ["<<EOF"] files=["EOF=echo one\necho two\n"] user= nonet=false mounts=`,
				`8: RUN shell=true ["<<-EOT bash -e"] files=["EOT=\techo tabs\n"] user= nonet=false mounts=`, // tabs go at run time
				`11: RUN shell=true ["true"] files=[] user= nonet=true mounts=`,
				`12: RUN shell=true ["pip install x"] files=[] user= nonet=false mounts=cache:/root/.cache,secret:`,
			},
		},
		{
			name: "CMD, ENTRYPOINT, HEALTHCHECK, SHELL, STOPSIGNAL, VOLUME, COPY heredoc",
			in: "FROM base\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\nCMD [\"python3\", \"app.py\"]\nENTRYPOINT /entry.sh\n" +
				"HEALTHCHECK --interval=5s CMD curl -f localhost\nHEALTHCHECK NONE\nSTOPSIGNAL SIGINT\nVOLUME /data [\"/x\"]\nVOLUME [\"/a\", \"/b\"]\n" +
				"COPY <<EOF /etc/motd\nhello $NAME\nEOF\n",
			want: []string{
				`1: FROM base AS "" platform=""`,
				`2: SHELL ["/bin/bash" "-o" "pipefail" "-c"]`,
				`3: CMD entrypoint=false shell=false ["python3" "app.py"]`,
				`4: CMD entrypoint=true shell=true ["/entry.sh"]`,
				`5: HEALTHCHECK ["CMD-SHELL" "curl -f localhost"]`,
				`6: HEALTHCHECK ["NONE"]`,
				"7: STOPSIGNAL SIGINT",
				`8: VOLUME ["/data" "[\"/x\"]"]`,
				`9: VOLUME ["/a" "/b"]`,
				`10: COPY add=false from= files= [] -> /etc/motd chown= chmod= exclude=[] unpack=auto contents=["EOF=\"hello $NAME\\n\" expand=true"]`,
			},
		},
		{
			name: "continuations with comments and blank lines inside, escape directive, CRLF",
			in:   "# escape=`\r\nFROM\tbase\r\nRUN apt-get update && `\r\n    # a comment inside\r\n\r\n    apt-get install -y jq\r\nENV X=1\r\n",
			want: []string{
				`2: FROM base AS "" platform=""`,
				`3: RUN shell=true ["apt-get update &&     apt-get install -y jq"] files=[] user= nonet=false mounts=`,
				`7: ENV [{"X" "1"}]`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			df, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got := summary(df)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestParseErrors: what cannot apply to a template is an error naming its line.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		msg      string
	}{
		{"ONBUILD", "FROM base\nONBUILD RUN x\n", 2, "ONBUILD: cannot apply"},
		{"secret mount without a secret", "FROM base\nRUN --mount=type=secret,id=tok,required=true cat /run/secrets/tok\n", 2, "needs a secret"},
		{"bind mount", "FROM base\nRUN --mount=type=bind,source=.,target=/src make\n", 2, "type=bind is not supported"},
		{"host network", "FROM base\nRUN --network=host true\n", 2, "--network=host is not available"},
		{"insecure", "FROM base\nRUN --security=insecure true\n", 2, "--security=insecure"},
		{"ADD --checksum", "FROM base\nADD --checksum=sha256:00 https://x/y /y\n", 2, "--checksum"},
		{"COPY --parents", "FROM base\nCOPY --parents a/b /c/\n", 2, "--parents"},
		{"unknown", "FROM base\nRUN a \\\n  b\nFROBNICATE x\n", 4, "FROBNICATE: unknown instruction"},
		{"unknown flag", "FROM base\nCOPY --frob=1 a /b\n", 2, "unknown flag: --frob"},
		{"no FROM", "RUN echo\n", 1, "comes before FROM"},
		{"empty", "# nothing\n", 1, "no instructions"},
		{"duplicate stage", "FROM base AS a\nRUN x\nFROM base AS A\n", 3, `stage name "a" is already used on line 1`},
		{"missing arguments", "FROM base\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"},
		{"bad escape", "# escape=x\nFROM base\n", 1, "invalid escape token"},
		{"SHELL not JSON", "FROM base\nSHELL bash -c\n", 2, "SHELL requires the arguments to be in JSON form"},
		{"unterminated heredoc", "FROM base\nCOPY <<EOF /x\n", 2, "unterminated heredoc"},
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

// TestExpand: a stage's words see its ENV over its ARGs, with the shell's
// modifiers, as BuildKit expands them.
func TestExpand(t *testing.T) {
	st := &buildState{b: &build{lex: shell.NewLex('\\')}, args: map[string]string{"NAME": "arg", "V": "1"},
		cfg: imageConfig{Env: []string{"HOME=/root", "EMPTY=", "NAME=world", "SP=a b"}}}
	x := st.expander()
	tests := []struct{ in, want, err string }{
		{in: "$HOME/x", want: "/root/x"},
		{in: "${HOME}x ${NAME} $V", want: "/rootx world 1"},
		{in: `'$HOME' "$HOME" \$HOME`, want: "$HOME /root $HOME"},
		{in: "${UNSET:-def} ${EMPTY:-def} ${EMPTY-def}", want: "def def "},
		{in: "${NAME:+alt} ${UNSET:+alt}x", want: "alt x"},
		{in: "${UNSET:-${NAME}}", want: "world"},
		{in: "$SP", want: "a b"},
		{in: "${UNSET:?must be set}", err: "must be set"},
		{in: "${HOME", err: "failed to process"},
	}
	for _, tc := range tests {
		got, err := x(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestSpec maps E2B's step form, as the SDK sends it, to steps, and refuses
// bad steps naming the field.
func TestSpec(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	good := &Spec{FromTemplate: "base", Steps: []SpecStep{
		{Type: "RUN", Args: []string{"apt-get update && apt-get install -y jq", "root"}},
		{Type: "copy", Args: []string{"app/", "/home/user/app", "user", "0755"}, FilesHash: hash, Force: true},
		{Type: "ENV", Args: []string{"A", "1", "PATH", "/opt/bin:$PATH"}},
		{Type: "ARG", Args: []string{"B", ""}},
		{Type: "WORKDIR", Args: []string{"/home/user/app"}},
		{Type: "USER", Args: []string{"app", "true"}},
		{Type: "RUN", Args: []string{"ln -s '/a' '/b'"}},
	}}
	df, err := good.Dockerfile()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`0: FROM base AS "" platform=""`,
		`0: RUN shell=true ["apt-get update && apt-get install -y jq"] files=[] user=root nonet=false mounts=`,
		`0: COPY add=false from= files=` + hash + ` ["app/"] -> /home/user/app chown=user chmod=0755 exclude=[] unpack=auto contents=[]`,
		`0: ENV [{"A" "1"} {"PATH" "/opt/bin:$PATH"}]`,
		"0: ARG [{Key:B Value: HasValue:true}]",
		"0: WORKDIR /home/user/app",
		"0: USER app create=true sudo=true",
		`0: RUN shell=true ["ln -s '/a' '/b'"] files=[] user= nonet=false mounts=`,
	}
	if got := summary(df); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s := df.Stages[0]; !s.fromTemplate || s.fromImage || s.Steps[1].Label != "2" || !s.Steps[1].force || s.Steps[0].force {
		t.Errorf("stage %+v", s)
	}
	bad := []struct {
		name string
		spec Spec
		msg  string
	}{
		{"no base", Spec{}, "exactly one of fromImage and fromTemplate"},
		{"both bases", Spec{FromImage: "x", FromTemplate: "y"}, "exactly one"},
		{"unknown type", Spec{FromTemplate: "base", Steps: []SpecStep{{Type: "HEALTHCHECK", Args: []string{"x"}}}}, "steps[0]: type: unknown step type"},
		{"odd ENV", Spec{FromTemplate: "base", Steps: []SpecStep{{Type: "RUN", Args: []string{"true"}}, {Type: "ENV", Args: []string{"A"}}}}, "steps[1]: args: ENV takes pairs"},
		{"COPY without hash", Spec{FromTemplate: "base", Steps: []SpecStep{{Type: "COPY", Args: []string{"a", "/b"}}}}, "steps[0]: filesHash"},
		{"bad mode", Spec{FromTemplate: "base", Steps: []SpecStep{{Type: "COPY", Args: []string{"a", "/b", "", "9"}, FilesHash: hash}}}, "steps[0]: args[3]: mode"},
		{"empty RUN", Spec{FromTemplate: "base", Steps: []SpecStep{{Type: "RUN", Args: []string{" "}}}}, "steps[0]: args: RUN takes"},
		{"bad user", Spec{FromTemplate: "base", Steps: []SpecStep{{Type: "USER", Args: []string{"a b"}}}}, "steps[0]: args: USER"},
		{"NUL", Spec{FromTemplate: "base", Steps: []SpecStep{{Type: "RUN", Args: []string{"a\x00b"}}}}, "NUL"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.spec.Dockerfile()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want ErrInvalid with %q", err, tc.msg)
			}
		})
	}
}
