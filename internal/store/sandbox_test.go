package store

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestSandboxRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		modify func(s *Sandbox)
	}{
		{"every field set", func(s *Sandbox) {}},
		{"nil maps, pointers and network", func(s *Sandbox) {
			s.Metadata, s.EnvVars, s.AllowInternetAccess, s.Network = nil, nil, nil, nil
		}},
		{"empty maps stay empty, not nil", func(s *Sandbox) {
			s.Metadata, s.EnvVars = map[string]string{}, map[string]string{}
		}},
		{"allow internet false", func(s *Sandbox) { f := false; s.AllowInternetAccess = &f }},
		{"zero times", func(s *Sandbox) { s.StartedAt, s.EndAt = time.Time{}, time.Time{} }},
		{"odd metadata", func(s *Sandbox) {
			s.Metadata = map[string]string{"a b": "c&d", "x=y": "%20", "": "empty key", "ü": "\"q\""}
		}},
		{"caller-chosen CreatedAt", func(s *Sandbox) { s.CreatedAt = base().Add(-time.Hour) }},
		{"nanosecond times", func(s *Sandbox) { s.StartedAt = base().Add(123456789 * time.Nanosecond) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := openTestDB(t)
			fixedClock(db, base().Add(time.Second))
			s := newSandbox("sbx1")
			tt.modify(s)
			wantCreated := s.CreatedAt
			if wantCreated.IsZero() {
				wantCreated = base().Add(time.Second)
			}
			mustInsert(t, db, s)
			if s.Version != 1 || !s.CreatedAt.Equal(wantCreated) || !s.UpdatedAt.Equal(wantCreated) {
				t.Fatalf("after insert: Version %d CreatedAt %v UpdatedAt %v, want 1 and %v",
					s.Version, s.CreatedAt, s.UpdatedAt, wantCreated)
			}
			got, err := db.GetSandbox(ctx, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, s) {
				t.Fatalf("GetSandbox:\n got %+v\nwant %+v", got, s)
			}
		})
	}
}

func TestSandboxErrors(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	mustInsert(t, db, newSandbox("exists"))
	stale := newSandbox("exists")
	stale.Version = 7
	badState := newSandbox("badstate")
	badState.State = "sleeping"
	badNet := newSandbox("badnet")
	badNet.Network = json.RawMessage(`{"allowOut":`)
	farFuture := newSandbox("far")
	farFuture.EndAt = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)

	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"insert duplicate", func() error { return db.InsertSandbox(ctx, newSandbox("exists")) }, ErrExists},
		{"insert nil", func() error { return db.InsertSandbox(ctx, nil) }, ErrInvalid},
		{"insert empty ID", func() error { return db.InsertSandbox(ctx, newSandbox("")) }, ErrInvalid},
		{"insert unknown state", func() error { return db.InsertSandbox(ctx, badState) }, ErrInvalid},
		{"insert bad network JSON", func() error { return db.InsertSandbox(ctx, badNet) }, ErrInvalid},
		{"insert time out of range", func() error { return db.InsertSandbox(ctx, farFuture) }, ErrInvalid},
		{"get missing", func() error { _, err := db.GetSandbox(ctx, "nope"); return err }, ErrNotFound},
		{"update missing", func() error { return db.UpdateSandbox(ctx, newSandbox("nope")) }, ErrNotFound},
		{"update stale version", func() error { return db.UpdateSandbox(ctx, stale) }, ErrConflict},
		{"update nil", func() error { return db.UpdateSandbox(ctx, nil) }, ErrInvalid},
		{"delete missing", func() error { return db.DeleteSandbox(ctx, "nope") }, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, tt.call(), tt.want) })
	}
	if stale.Version != 7 {
		t.Errorf("a failed update changed Version to %d", stale.Version)
	}
	for _, id := range []string{"badstate", "badnet", "far"} {
		if n := countRows(t, db, "sandboxes", "id = ?", id); n != 0 {
			t.Errorf("refused sandbox %s was stored", id)
		}
	}
}

func TestUpdateSandbox(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	fixedClock(db, base())
	s := newSandbox("sbx1")
	mustInsert(t, db, s)
	created := s.CreatedAt

	fixedClock(db, base().Add(time.Minute))
	s.State = StatePaused
	s.Metadata = map[string]string{"owner": "bob", "team": "x"}
	s.Network = nil
	s.CreatedAt = base().Add(-time.Hour) // must be ignored
	if err := db.UpdateSandbox(ctx, s); err != nil {
		t.Fatal(err)
	}
	if s.Version != 2 || !s.UpdatedAt.Equal(base().Add(time.Minute)) {
		t.Fatalf("after update: Version %d UpdatedAt %v", s.Version, s.UpdatedAt)
	}
	got, err := db.GetSandbox(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(created) {
		t.Errorf("CreatedAt changed to %v, want %v", got.CreatedAt, created)
	}
	s.CreatedAt = created
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("after update:\n got %+v\nwant %+v", got, s)
	}
	// The metadata side table follows the update.
	for _, tc := range []struct {
		md   map[string]string
		want int
	}{
		{map[string]string{"owner": "alice"}, 0},
		{map[string]string{"owner": "bob"}, 1},
		{map[string]string{"owner": "bob", "team": "x"}, 1},
	} {
		items, _, err := db.ListSandboxes(ctx, SandboxFilter{Metadata: tc.md})
		if err != nil || len(items) != tc.want {
			t.Errorf("filter %v after update: %d items, %v; want %d", tc.md, len(items), err, tc.want)
		}
	}
	// The old version is now stale.
	old := *got
	old.Version = 1
	wantErr(t, "update with version 1", db.UpdateSandbox(ctx, &old), ErrConflict)
}

func TestDeleteSandboxCascades(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	keep, gone := newSandbox("keep"), newSandbox("gone")
	mustInsert(t, db, keep, gone)
	for _, id := range []string{keep.ID, gone.ID} {
		if err := db.InsertMetric(ctx, id, Metric{Timestamp: base()}); err != nil {
			t.Fatal(err)
		}
		if err := db.AppendEvent(ctx, id, Event{Timestamp: base(), Line: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.DeleteSandbox(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "get deleted", func() error { _, err := db.GetSandbox(ctx, gone.ID); return err }(), ErrNotFound)
	for _, table := range []string{"sandbox_metadata", "sandbox_metrics", "sandbox_events"} {
		if n := countRows(t, db, table, "sandbox_id = ?", gone.ID); n != 0 {
			t.Errorf("%s keeps %d rows of the deleted sandbox", table, n)
		}
		if n := countRows(t, db, table, "sandbox_id = ?", keep.ID); n != 1 {
			t.Errorf("%s has %d rows of the kept sandbox, want 1", table, n)
		}
	}
	// The ID can be reused.
	mustInsert(t, db, newSandbox(gone.ID))
}
