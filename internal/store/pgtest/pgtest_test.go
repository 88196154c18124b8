package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// TestNewDatabase: two databases of the server are apart, and each answers.
func TestNewDatabase(t *testing.T) {
	ctx := context.Background()
	a, b := NewDatabase(t), NewDurableDatabase(t)
	if a == b {
		t.Fatalf("two databases share the URL %s", a)
	}
	for url, want := range map[string]string{a: "off", b: "on"} { // fsync
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatalf("connect %s: %v", url, err)
		}
		var fsync string
		if err := c.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != want {
			t.Errorf("%s: fsync = %q, %v; want %q", url, fsync, err, want)
		}
		if _, err := c.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
			t.Errorf("%s: create a table: %v", url, err)
		}
		c.Close(ctx)
	}
}
