package store

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listFixture inserts 57 sandboxes with shuffled IDs, started_at values
// shared by three sandboxes each (so the ID breaks ties), and a mix of
// states, templates and metadata with spaces, & and =.
func listFixture(t *testing.T, db *DB) []*Sandbox {
	t.Helper()
	states := []string{StateRunning, StatePaused, StateKilled, StateStarting}
	var all []*Sandbox
	for i := range 57 {
		s := newSandbox(fmt.Sprintf("sb%03d", (i*37)%57))
		s.StartedAt = base().Add(time.Duration(i/3) * time.Second)
		s.State = states[i%len(states)]
		s.TemplateID = "py"
		if i%3 == 0 {
			s.TemplateID = "base"
		}
		s.Metadata = map[string]string{"i": strconv.Itoa(i)}
		if i%2 == 0 {
			s.Metadata["a b"] = "c&d"
		}
		if i%5 != 0 {
			s.Metadata["x=y"] = "1 2"
		}
		all = append(all, s)
	}
	bulkInsert(t, db, all)
	return all
}

// expectList filters and orders sbs as ListSandboxes should.
func expectList(sbs []*Sandbox, f SandboxFilter) []string {
	var ids []*Sandbox
	for _, s := range sbs {
		if len(f.States) > 0 && !slices.Contains(f.States, s.State) {
			continue
		}
		if f.TemplateID != "" && s.TemplateID != f.TemplateID {
			continue
		}
		if !f.StartedAfter.IsZero() && !s.StartedAt.After(f.StartedAfter) {
			continue
		}
		match := true
		for k, v := range f.Metadata {
			if got, ok := s.Metadata[k]; !ok || got != v {
				match = false
			}
		}
		if match {
			ids = append(ids, s)
		}
	}
	slices.SortFunc(ids, func(a, b *Sandbox) int {
		c := cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
		if f.Descending {
			return -c
		}
		return c
	})
	out := []string{}
	for _, s := range ids {
		out = append(out, s.ID)
	}
	return out
}

func TestListSandboxesPaging(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	all := listFixture(t, db)

	filters := []struct {
		name string
		f    SandboxFilter
	}{
		{"all", SandboxFilter{}},
		{"running", SandboxFilter{States: []string{StateRunning}}},
		{"running or paused", SandboxFilter{States: []string{StateRunning, StatePaused}}},
		{"no such state", SandboxFilter{States: []string{StateDead}}},
		{"metadata with space and &", SandboxFilter{Metadata: map[string]string{"a b": "c&d"}}},
		{"two metadata pairs", SandboxFilter{Metadata: map[string]string{"a b": "c&d", "x=y": "1 2"}}},
		{"metadata value must match exactly", SandboxFilter{Metadata: map[string]string{"a b": "c&d "}}},
		{"metadata unknown key", SandboxFilter{Metadata: map[string]string{"nope": "c&d"}}},
		{"template", SandboxFilter{TemplateID: "py"}},
		{"started after", SandboxFilter{StartedAfter: base().Add(5 * time.Second)}},
		{"everything combined", SandboxFilter{
			States:       []string{StateRunning, StatePaused},
			Metadata:     map[string]string{"x=y": "1 2"},
			TemplateID:   "py",
			StartedAfter: base().Add(2 * time.Second),
		}},
	}
	for _, ft := range filters {
		for _, desc := range []bool{false, true} {
			for _, limit := range []int{0, 1, 4, 7, 100} {
				f := ft.f
				f.Descending, f.Limit = desc, limit
				t.Run(fmt.Sprintf("%s/desc=%v/limit=%d", ft.name, desc, limit), func(t *testing.T) {
					want := expectList(all, f)
					got := []string{}
					pages := 0
					for {
						items, next, err := db.ListSandboxes(ctx, f)
						if err != nil {
							t.Fatalf("page %d: %v", pages, err)
						}
						pages++
						if limit > 0 && len(items) > limit {
							t.Fatalf("page %d has %d items, limit %d", pages, len(items), limit)
						}
						for _, s := range items {
							got = append(got, s.ID)
						}
						if next == "" {
							break
						}
						if len(items) != limit {
							t.Fatalf("page %d has %d items and a next cursor", pages, len(items))
						}
						if pages > len(all)+1 {
							t.Fatal("paging does not end")
						}
						f.Cursor = next
					}
					if !slices.Equal(got, want) {
						t.Fatalf("paged IDs\n got %v\nwant %v", got, want)
					}
					wantPages := 1
					if limit > 0 && len(want) > 0 {
						wantPages = (len(want) + limit - 1) / limit
					}
					if pages != wantPages {
						t.Fatalf("%d pages, want %d", pages, wantPages)
					}
				})
			}
		}
	}
}

func TestListSandboxesReturnsFullRecords(t *testing.T) {
	db := openTestDB(t)
	s := newSandbox("full")
	mustInsert(t, db, s)
	items, next, err := db.ListSandboxes(context.Background(), SandboxFilter{Limit: 10})
	if err != nil || next != "" || len(items) != 1 {
		t.Fatalf("ListSandboxes = %d items, %q, %v", len(items), next, err)
	}
	got := items[0]
	if got.EnvdAccessToken != s.EnvdAccessToken || got.Metadata["owner"] != "alice" ||
		got.Version != 1 || !got.EndAt.Equal(s.EndAt) || string(got.Network) != string(s.Network) {
		t.Fatalf("listed record %+v differs from inserted %+v", got, s)
	}
}

func TestListSandboxesBadInput(t *testing.T) {
	db := openTestDB(t)
	mustInsert(t, db, newSandbox("sb1"))
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name string
		f    SandboxFilter
		want error
	}{
		{"not base64", SandboxFilter{Cursor: "not base64!"}, ErrInvalidCursor},
		{"no separators", SandboxFilter{Cursor: b64("garbage")}, ErrInvalidCursor},
		{"wrong version", SandboxFilter{Cursor: b64("c9:1:sb1")}, ErrInvalidCursor},
		{"position not a number", SandboxFilter{Cursor: b64("c1:abc:sb1")}, ErrInvalidCursor},
		{"empty ID", SandboxFilter{Cursor: b64("c1:1:")}, ErrInvalidCursor},
		{"negative limit", SandboxFilter{Limit: -1}, ErrInvalid},
		{"valid cursor", SandboxFilter{Cursor: encodeCursor(1, "a")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := db.ListSandboxes(context.Background(), tt.f)
			wantErr(t, tt.name, err, tt.want)
		})
	}
}

func TestListDue(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	now := base().Add(time.Hour)
	mk := func(id, state string, end time.Time) *Sandbox {
		s := newSandbox(id)
		s.State, s.EndAt = state, end
		return s
	}
	mustInsert(t, db,
		mk("late", StateRunning, now.Add(-time.Minute)),
		mk("exact", StateRunning, now),
		mk("later", StateRunning, now.Add(-2*time.Minute)),
		mk("tie-b", StateRunning, now.Add(-2*time.Minute)),
		mk("future", StateRunning, now.Add(time.Nanosecond)),
		mk("paused", StatePaused, now.Add(-time.Hour)),
		mk("starting", StateStarting, now.Add(-time.Hour)),
		mk("killed", StateKilled, now.Add(-time.Hour)),
	)
	tests := []struct {
		name  string
		state string
		now   time.Time
		limit int
		want  []string
	}{
		{"now", StateRunning, now, 0, []string{"later", "tie-b", "late", "exact"}},
		{"a nanosecond later", StateRunning, now.Add(time.Nanosecond), 0, []string{"later", "tie-b", "late", "exact", "future"}},
		{"long before", StateRunning, base().Add(-time.Hour), 0, []string{}},
		{"pages of one", StateRunning, now, 1, []string{"later", "tie-b", "late", "exact"}},
		{"pages of three", StateRunning, now.Add(time.Nanosecond), 3, []string{"later", "tie-b", "late", "exact", "future"}},
		{"paused", StatePaused, now, 2, []string{"paused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []string{}
			f := DueFilter{State: tt.state, Before: tt.now, Limit: tt.limit}
			for pages := 0; ; pages++ {
				due, err := db.ListDue(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				if tt.limit > 0 && len(due) > tt.limit {
					t.Fatalf("page of %d, limit %d", len(due), tt.limit)
				}
				for _, s := range due {
					got = append(got, s.ID)
				}
				if tt.limit == 0 || len(due) < tt.limit || pages > 10 {
					break
				}
				last := due[len(due)-1]
				f.AfterEndAt, f.AfterID = last.EndAt, last.ID
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("ListDue = %v, want %v", got, tt.want)
			}
		})
	}
	for _, f := range []DueFilter{{State: "gone", Before: now}, {State: StateRunning, Limit: -1}} {
		if _, err := db.ListDue(ctx, f); !errors.Is(err, ErrInvalid) {
			t.Errorf("ListDue(%+v) = %v, want ErrInvalid", f, err)
		}
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
	if text := strings.Join(plan, "\n"); !strings.Contains(text, "sandboxes_state_end") {
		t.Errorf("ListDue does not use the (state, end_at) index:\n%s", text)
	}
}
