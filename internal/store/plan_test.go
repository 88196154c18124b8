package store

import (
	"strings"
	"testing"
)

// explain returns SQLite's query plan of q, one detail line per step.
func explain(t *testing.T, db *DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.sql.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// TestListQueryPlans guards the list performance on SQLite: no filter shape
// may scan the sandboxes table itself, and the common shapes must read their
// page in index order instead of sorting every match.
func TestListQueryPlans(t *testing.T) {
	db := openTestDB(t)
	cursor := encodeCursor(base().UnixNano(), "sbx1")
	tests := []struct {
		name   string
		f      SandboxFilter
		sortOK bool // several states: a sort of small index tuples is expected
	}{
		{"no filter", SandboxFilter{}, false},
		{"no filter desc with cursor", SandboxFilter{Descending: true, Cursor: cursor}, false},
		{"one state", SandboxFilter{States: []string{StateRunning}, Cursor: cursor}, false},
		{"template", SandboxFilter{TemplateID: "base"}, false},
		{"started after", SandboxFilter{StartedAfter: base()}, false},
		{"metadata", SandboxFilter{Metadata: map[string]string{"a": "b"}, Cursor: cursor}, false},
		{"metadata and state", SandboxFilter{Metadata: map[string]string{"a": "b", "c": "d"}, States: []string{StateRunning}}, false},
		{"two states", SandboxFilter{States: []string{StateRunning, StatePaused}}, true},
		{"team", SandboxFilter{TeamID: "t", Descending: true, Cursor: cursor}, false},
		{"team and state", SandboxFilter{TeamID: "t", States: []string{StateRunning}}, false},
		{"team and template", SandboxFilter{TeamID: "t", TemplateID: "base"}, false},
		{"team and metadata", SandboxFilter{TeamID: "t", Metadata: map[string]string{"a": "b"}, Cursor: cursor}, false},
		{"team, metadata and state", SandboxFilter{TeamID: "t", Metadata: map[string]string{"a": "b", "c": "d"}, States: []string{StateRunning}}, false},
		{"team and two states", SandboxFilter{TeamID: "t", States: []string{StateRunning, StatePaused}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			f.Limit = 100
			q, args, err := listQuery(db.d, f)
			if err != nil {
				t.Fatal(err)
			}
			plan := explain(t, db, q, args...)
			text := strings.Join(plan, "\n")
			for _, line := range plan {
				if line == "SCAN s" {
					t.Errorf("full table scan:\n%s", text)
				}
			}
			if !tt.sortOK && strings.Contains(text, "TEMP B-TREE") {
				t.Errorf("sorts the matches instead of reading them in order:\n%s", text)
			}
		})
	}
}

// TestListDuePlan: the reaper's query reads the (state, end_at) index, not
// the whole table.
func TestListDuePlan(t *testing.T) {
	db := openTestDB(t)
	q, args, err := dueQuery(DueFilter{State: StateRunning, Before: base(), AfterEndAt: base(), AfterID: "a", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if text := strings.Join(explain(t, db, q, args...), "\n"); !strings.Contains(text, "sandboxes_state_end") {
		t.Errorf("ListDue does not use the (state, end_at) index:\n%s", text)
	}
}
