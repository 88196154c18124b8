package settings

import (
	"errors"
	"fmt"
	"testing"
)

func TestApply(t *testing.T) {
	str := func(s string) *string { return &s }
	s := New(map[string]string{"BASE": "1"})
	steps := []struct {
		name      string
		in        Init
		presented string
		applied   bool
		err       error
		token     string
		user      string
		env       string
	}{
		{"no token yet: anything goes", Init{AccessToken: str("t1"), DefaultUser: "user", EnvVars: map[string]string{"A": "a"}, Timestamp: "2030-01-01T00:00:00Z"}, "", true, nil, "t1", "user", "map[A:a BASE:1]"},
		{"bad timestamp", Init{Timestamp: "noon"}, "t1", false, errAny, "t1", "user", "map[A:a BASE:1]"},
		{"a new token without proof", Init{AccessToken: str("t2")}, "", false, ErrTokenMismatch, "t1", "user", "map[A:a BASE:1]"},
		{"no token and no proof", Init{EnvVars: map[string]string{"X": "x"}}, "", false, ErrTokenMismatch, "t1", "user", "map[A:a BASE:1]"},
		{"a wrong header", Init{EnvVars: map[string]string{"X": "x"}}, "nope", false, ErrTokenMismatch, "t1", "user", "map[A:a BASE:1]"},
		{"the same token in the body", Init{AccessToken: str("t1"), EnvVars: map[string]string{"A": "a2"}}, "", true, nil, "t1", "user", "map[A:a2 BASE:1]"},
		{"older timestamp ignored", Init{EnvVars: map[string]string{"A": "old"}, Timestamp: "2029-01-01T00:00:00Z"}, "t1", false, nil, "t1", "user", "map[A:a2 BASE:1]"},
		{"rotate with the header", Init{AccessToken: str("t2"), DefaultUser: "root", Timestamp: "2030-01-02T00:00:00Z"}, "t1", true, nil, "t2", "root", "map[A:a2 BASE:1]"},
		{"an empty token keeps the old one", Init{AccessToken: str("")}, "t2", true, nil, "t2", "root", "map[A:a2 BASE:1]"},
	}
	for _, st := range steps {
		applied, err := s.Apply(st.in, st.presented)
		if applied != st.applied || (st.err == nil) != (err == nil) || (st.err != nil && st.err != errAny && !errors.Is(err, st.err)) {
			t.Fatalf("%s: applied %v err %v", st.name, applied, err)
		}
		tok, _ := s.Token()
		if tok != st.token || s.DefaultUser() != st.user || fmtMap(s.Env()) != st.env {
			t.Fatalf("%s: token %q user %q env %v", st.name, tok, s.DefaultUser(), s.Env())
		}
	}
	if !s.TokenMatches("t2") || s.TokenMatches("t1") || s.TokenMatches("") || !s.HasToken() {
		t.Fatal("token comparison")
	}
	if New(nil).TokenMatches("") {
		t.Fatal("an unset token matches the empty string")
	}
}

// errAny stands for "some error".
var errAny = errors.New("any")

func fmtMap(m map[string]string) string { return fmt.Sprint(m) }
