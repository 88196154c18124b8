package template

import (
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary text to the Dockerfile parser: it must never panic,
// and every refusal must be an ErrInvalid (a 400 for the API, never a 500).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"FROM base\nRUN echo hi\n",
		"FROM scratch\nCOPY . /app\nWORKDIR /app\nENV A=1 B=\"two words\"\nUSER user\n",
		"# escape=`\nFROM base\nRUN echo a `\n  b\n",
		"ARG V=1\nFROM base\nARG V\nRUN echo $V ${V:-x}\n",
		"FROM base\nRUN [\"/bin/sh\", \"-c\", \"true\"]\nRUN [\n",
		"FROM base AS a\nFROM a\nCOPY --from=a /x /y\n",
		"RUN true\n",
		"FROM base\nADD --chown=1:1 a.tar /x/\nENV\nUSER\n",
		"FROM base\\\n",
		"\x00FROM\x00",
		"FROM base AS b\nRUN <<EOF\necho hi\nEOF\nFROM scratch\nCOPY --from=b <<X /y\nz\nX\n",
		"FROM base\nRUN --mount=type=cache,target=/c --network=none true\nHEALTHCHECK CMD true\nONBUILD RUN x\n",
		"FROM base\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo $X\nENTRYPOINT [\"a\"]\nVOLUME /v\nSTOPSIGNAL 9\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		df, err := Parse(text)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) refused with an untyped error: %v", text, err)
			}
			return
		}
		if df == nil {
			t.Fatalf("Parse(%q) returned nothing and no error", text)
		}
	})
}
