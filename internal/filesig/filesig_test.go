package filesig

import "testing"

func TestSign(t *testing.T) {
	exp := int64(1700000000)
	tests := []struct {
		name                  string
		path, op, user, token string
		exp                   *int64
		want                  string
	}{
		// Values computed the way the e2b client computes them (node crypto).
		{"no expiration", "/home/user/a.txt", OpRead, "user", "tok", nil, "v1_p0WqJQYCLtO6YX+e4h7VbpybRsdJbMbIw7clYpulIJk"},
		{"with expiration", "/home/user/a.txt", OpWrite, "", "tok", &exp, "v1_QdtRqpz7xKNXzcs4IguYpySRPZbSGp8b64s9hqOl+wo"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Sign(tc.path, tc.op, tc.user, tc.token, tc.exp)
			if got != tc.want {
				t.Fatalf("Sign = %s, want %s", got, tc.want)
			}
			if !Matches(got, tc.path, tc.op, tc.user, tc.token, tc.exp) {
				t.Fatal("Matches refuses Sign's own signature")
			}
			if Matches(got, tc.path, tc.op, tc.user, tc.token+"x", tc.exp) {
				t.Fatal("Matches accepts another token")
			}
		})
	}
}
