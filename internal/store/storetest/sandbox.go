package storetest

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

func testSandboxRoundTrip(t *testing.T, e *env) {
	tests := []struct {
		name   string
		modify func(s *store.Sandbox)
	}{
		{"every field set", func(s *store.Sandbox) {}},
		{"nil maps, pointers and network", func(s *store.Sandbox) {
			s.Metadata, s.EnvVars, s.AllowInternetAccess, s.Network = nil, nil, nil, nil
		}},
		{"empty maps stay empty, not nil", func(s *store.Sandbox) {
			s.Metadata, s.EnvVars = map[string]string{}, map[string]string{}
		}},
		{"allow internet false", func(s *store.Sandbox) { f := false; s.AllowInternetAccess = &f }},
		{"zero times", func(s *store.Sandbox) { s.StartedAt, s.EndAt = time.Time{}, time.Time{} }},
		{"odd metadata", func(s *store.Sandbox) {
			s.Metadata = map[string]string{"a b": "c&d", "x=y": "%20", "": "empty key", "ü": "\"q\""}
		}},
		{"caller-chosen CreatedAt", func(s *store.Sandbox) { s.CreatedAt = base().Add(-time.Hour) }},
		{"nanosecond times", func(s *store.Sandbox) { s.StartedAt = base().Add(123456789 * time.Nanosecond) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := e.open(t)
			e.setClock(db, base().Add(time.Second))
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

func testSandboxErrors(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
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
		{"insert duplicate", func() error { return db.InsertSandbox(ctx, newSandbox("exists")) }, store.ErrExists},
		{"insert nil", func() error { return db.InsertSandbox(ctx, nil) }, store.ErrInvalid},
		{"insert empty ID", func() error { return db.InsertSandbox(ctx, newSandbox("")) }, store.ErrInvalid},
		{"insert unknown state", func() error { return db.InsertSandbox(ctx, badState) }, store.ErrInvalid},
		{"insert bad network JSON", func() error { return db.InsertSandbox(ctx, badNet) }, store.ErrInvalid},
		{"insert time out of range", func() error { return db.InsertSandbox(ctx, farFuture) }, store.ErrInvalid},
		{"get missing", func() error { _, err := db.GetSandbox(ctx, "nope"); return err }, store.ErrNotFound},
		{"update missing", func() error { return db.UpdateSandbox(ctx, newSandbox("nope")) }, store.ErrNotFound},
		{"update stale version", func() error { return db.UpdateSandbox(ctx, stale) }, store.ErrConflict},
		{"update nil", func() error { return db.UpdateSandbox(ctx, nil) }, store.ErrInvalid},
		{"delete missing", func() error { return db.DeleteSandbox(ctx, "nope") }, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, tt.call(), tt.want) })
	}
	if stale.Version != 7 {
		t.Errorf("a failed update changed Version to %d", stale.Version)
	}
	for _, id := range []string{"badstate", "badnet", "far"} {
		absent(t, db, id)
	}
}

func testUpdateSandbox(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	e.setClock(db, base())
	s := newSandbox("sbx1")
	mustInsert(t, db, s)
	created := s.CreatedAt

	e.setClock(db, base().Add(time.Minute))
	s.State = store.StatePaused
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
		items, _, err := db.ListSandboxes(ctx, store.SandboxFilter{Metadata: tc.md})
		if err != nil || len(items) != tc.want {
			t.Errorf("filter %v after update: %d items, %v; want %d", tc.md, len(items), err, tc.want)
		}
	}
	// The old version is now stale.
	old := *got
	old.Version = 1
	wantErr(t, "update with version 1", db.UpdateSandbox(ctx, &old), store.ErrConflict)
}

func testDeleteSandboxCascades(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	keep, gone := newSandbox("keep"), newSandbox("gone")
	gone.Metadata = map[string]string{"gone": "1"}
	mustInsert(t, db, keep, gone)
	for _, id := range []string{keep.ID, gone.ID} {
		if err := db.InsertMetric(ctx, id, store.Metric{Timestamp: base()}); err != nil {
			t.Fatal(err)
		}
		if err := db.AppendEvent(ctx, id, store.Event{Timestamp: base(), Line: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.DeleteSandbox(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "get deleted", func() error { _, err := db.GetSandbox(ctx, gone.ID); return err }(), store.ErrNotFound)
	// The ID can be reused, and the new sandbox inherits nothing of the old
	// one: no metadata, samples or events.
	again := newSandbox(gone.ID)
	again.Metadata = nil
	mustInsert(t, db, again)
	for _, s := range []struct {
		id   string
		md   map[string]string
		want int
	}{{gone.ID, map[string]string{"gone": "1"}, 0}, {keep.ID, map[string]string{"owner": "alice"}, 1}} {
		items, _, err := db.ListSandboxes(ctx, store.SandboxFilter{Metadata: s.md})
		if err != nil || len(items) != s.want {
			t.Errorf("sandbox %s: %d listed by its metadata, %v; want %d", s.id, len(items), err, s.want)
		}
		ms, err := db.ListMetrics(ctx, s.id, time.Time{}, time.Time{})
		if err != nil || len(ms) != s.want {
			t.Errorf("sandbox %s: %d samples, %v; want %d", s.id, len(ms), err, s.want)
		}
		ev, err := db.ListEvents(ctx, s.id, time.Time{}, 0)
		if err != nil || len(ev) != s.want {
			t.Errorf("sandbox %s: %d events, %v; want %d", s.id, len(ev), err, s.want)
		}
	}
}
