package storetest

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// listFixture inserts 57 sandboxes with shuffled IDs, started_at values
// shared by three sandboxes each (so the ID breaks ties), and a mix of
// states, templates and metadata with spaces, & and =.
func listFixture(t *testing.T, db *store.DB) []*store.Sandbox {
	t.Helper()
	states := []string{store.StateRunning, store.StatePaused, store.StateKilled, store.StateStarting}
	var all []*store.Sandbox
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
	mustInsert(t, db, all...)
	return all
}

// expectList filters and orders sbs as ListSandboxes should.
func expectList(sbs []*store.Sandbox, f store.SandboxFilter) []string {
	var ids []*store.Sandbox
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
	slices.SortFunc(ids, func(a, b *store.Sandbox) int {
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

func testListSandboxesPaging(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	all := listFixture(t, db)

	filters := []struct {
		name string
		f    store.SandboxFilter
	}{
		{"all", store.SandboxFilter{}},
		{"running", store.SandboxFilter{States: []string{store.StateRunning}}},
		{"running or paused", store.SandboxFilter{States: []string{store.StateRunning, store.StatePaused}}},
		{"no such state", store.SandboxFilter{States: []string{store.StateDead}}},
		{"metadata with space and &", store.SandboxFilter{Metadata: map[string]string{"a b": "c&d"}}},
		{"two metadata pairs", store.SandboxFilter{Metadata: map[string]string{"a b": "c&d", "x=y": "1 2"}}},
		{"metadata value must match exactly", store.SandboxFilter{Metadata: map[string]string{"a b": "c&d "}}},
		{"metadata unknown key", store.SandboxFilter{Metadata: map[string]string{"nope": "c&d"}}},
		{"template", store.SandboxFilter{TemplateID: "py"}},
		{"started after", store.SandboxFilter{StartedAfter: base().Add(5 * time.Second)}},
		{"everything combined", store.SandboxFilter{
			States:       []string{store.StateRunning, store.StatePaused},
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

func testListSandboxesReturnsFullRecords(t *testing.T, e *env) {
	db := e.open(t)
	s := newSandbox("full")
	mustInsert(t, db, s)
	items, next, err := db.ListSandboxes(context.Background(), store.SandboxFilter{Limit: 10})
	if err != nil || next != "" || len(items) != 1 {
		t.Fatalf("ListSandboxes = %d items, %q, %v", len(items), next, err)
	}
	got := items[0]
	if got.EnvdAccessToken != s.EnvdAccessToken || got.Metadata["owner"] != "alice" ||
		got.Version != 1 || !got.EndAt.Equal(s.EndAt) || string(got.Network) != string(s.Network) {
		t.Fatalf("listed record %+v differs from inserted %+v", got, s)
	}
}

func testListSandboxesBadInput(t *testing.T, e *env) {
	db := e.open(t)
	mustInsert(t, db, newSandbox("sb1"))
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name string
		f    store.SandboxFilter
		want error
	}{
		{"not base64", store.SandboxFilter{Cursor: "not base64!"}, store.ErrInvalidCursor},
		{"no separators", store.SandboxFilter{Cursor: b64("garbage")}, store.ErrInvalidCursor},
		{"wrong version", store.SandboxFilter{Cursor: b64("c9:1:sb1")}, store.ErrInvalidCursor},
		{"position not a number", store.SandboxFilter{Cursor: b64("c1:abc:sb1")}, store.ErrInvalidCursor},
		{"empty ID", store.SandboxFilter{Cursor: b64("c1:1:")}, store.ErrInvalidCursor},
		{"negative limit", store.SandboxFilter{Limit: -1}, store.ErrInvalid},
		{"valid cursor", store.SandboxFilter{Cursor: b64("c1:1:a")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := db.ListSandboxes(context.Background(), tt.f)
			wantErr(t, tt.name, err, tt.want)
		})
	}
}

func testListDue(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	now := base().Add(time.Hour)
	mk := func(id, state string, end time.Time) *store.Sandbox {
		s := newSandbox(id)
		s.State, s.EndAt = state, end
		return s
	}
	mustInsert(t, db,
		mk("late", store.StateRunning, now.Add(-time.Minute)),
		mk("exact", store.StateRunning, now),
		mk("later", store.StateRunning, now.Add(-2*time.Minute)),
		mk("tie-b", store.StateRunning, now.Add(-2*time.Minute)),
		mk("future", store.StateRunning, now.Add(time.Nanosecond)),
		mk("paused", store.StatePaused, now.Add(-time.Hour)),
		mk("starting", store.StateStarting, now.Add(-time.Hour)),
		mk("killed", store.StateKilled, now.Add(-time.Hour)),
	)
	tests := []struct {
		name  string
		state string
		now   time.Time
		limit int
		want  []string
	}{
		{"now", store.StateRunning, now, 0, []string{"later", "tie-b", "late", "exact"}},
		{"a nanosecond later", store.StateRunning, now.Add(time.Nanosecond), 0, []string{"later", "tie-b", "late", "exact", "future"}},
		{"long before", store.StateRunning, base().Add(-time.Hour), 0, []string{}},
		{"pages of one", store.StateRunning, now, 1, []string{"later", "tie-b", "late", "exact"}},
		{"pages of three", store.StateRunning, now.Add(time.Nanosecond), 3, []string{"later", "tie-b", "late", "exact", "future"}},
		{"paused", store.StatePaused, now, 2, []string{"paused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []string{}
			f := store.DueFilter{State: tt.state, Before: tt.now, Limit: tt.limit}
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
	for _, f := range []store.DueFilter{{State: "gone", Before: now}, {State: store.StateRunning, Limit: -1}} {
		if _, err := db.ListDue(ctx, f); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ListDue(%+v) = %v, want ErrInvalid", f, err)
		}
	}
}
