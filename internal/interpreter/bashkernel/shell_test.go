package bashkernel

import "testing"

func TestHeldBack(t *testing.T) {
	tok := []byte("\036lelantos-ab\036")
	cases := []struct {
		name    string
		b       string
		partial int
		utf8    int
	}{
		{"nothing pending", "", 0, 0},
		{"plain text", "hello\n", 0, 0},
		{"the token's first byte", "out\036", 1, 0},
		{"most of the token", "out\036lelantos-a", 11, 0},
		{"not the token", "out\036x", 0, 0},
		{"a cut two-byte character", "caf\xc3", 0, 1},
		{"a cut three-byte character", "\xe2\x82", 0, 2},
		{"a whole character", "€", 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := partialSuffix([]byte(c.b), tok); got != c.partial {
				t.Errorf("partialSuffix = %d, want %d", got, c.partial)
			}
			if got := incompleteUTF8([]byte(c.b)); got != c.utf8 {
				t.Errorf("incompleteUTF8 = %d, want %d", got, c.utf8)
			}
		})
	}
}
