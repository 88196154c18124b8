package api

import (
	"regexp"
	"testing"
)

var (
	keyRE  = regexp.MustCompile(`^e2b_[0-9a-f]{40}$`)
	uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// createdKey is the CreatedTeamAPIKey shape.
type createdKey struct {
	teamKeyJSON
	Key string `json:"key"`
}

// exerciseAccounts calls /teams and /api-keys with their main outcomes, as
// team B; it is part of TestSpecConformance, which checks each answer
// against openapi.yaml.
func exerciseAccounts(t *testing.T, e *env, want func(*response, int) *response) {
	var teams []teamJSON
	want(e.doAs(e.keyB, "GET", "/teams", ""), 200).decode(t, &teams)
	if len(teams) != 1 || teams[0].TeamID != e.teamB.ID || teams[0].Name != "Team Beta" || !teams[0].IsDefault ||
		!keyRE.MatchString(teams[0].APIKey) {
		t.Fatalf("GET /teams = %+v", teams)
	}
	// The key GET /teams made is team B's, and works.
	var again []teamJSON
	want(e.doAs(teams[0].APIKey, "GET", "/teams", ""), 200).decode(t, &again)
	if len(again) != 1 || again[0].TeamID != e.teamB.ID || again[0].APIKey == teams[0].APIKey {
		t.Fatalf("GET /teams with the login key = %+v", again)
	}

	var made createdKey
	want(e.doAs(e.keyB, "POST", "/api-keys", `{"name":"ci"}`), 201).decode(t, &made)
	if !uuidRE.MatchString(made.ID) || !keyRE.MatchString(made.Key) || made.Name != "ci" || made.CreatedBy != nil ||
		made.LastUsed != nil || made.Mask != (keyMaskJSON{Prefix: "e2b_", ValueLength: 40,
		MaskedValuePrefix: made.Key[4:6], MaskedValueSuffix: made.Key[len(made.Key)-4:]}) {
		t.Fatalf("POST /api-keys = %+v", made)
	}
	want(e.doAs(e.keyB, "POST", "/api-keys", `{}`), 400)
	want(e.doAs(e.keyB, "POST", "/api-keys", `{"name":"  "}`), 400)
	want(e.doAs(e.keyB, "POST", "/api-keys", `{"name":7}`), 400)

	var keys []teamKeyJSON
	want(e.doAs(made.Key, "GET", "/api-keys", ""), 200).decode(t, &keys)
	names := map[string]bool{}
	for _, k := range keys {
		names[k.Name] = true
		if k.Mask.Prefix != "e2b_" || k.Mask.ValueLength != 40 || len(k.Mask.MaskedValuePrefix) != 2 {
			t.Errorf("mask of %s: %+v", k.Name, k.Mask)
		}
	}
	if len(keys) != 4 || !names["b"] || !names["ci"] || !names["CLI login/configure"] || names["test"] {
		t.Fatalf("team B's keys = %+v", keys)
	}

	r := want(e.doAs(e.keyB, "PATCH", "/api-keys/"+made.ID, `{"name":"renamed"}`), 202)
	if len(r.Body) != 0 {
		t.Errorf("PATCH answered a body: %s", r.Body)
	}
	want(e.doAs(e.keyB, "PATCH", "/api-keys/"+made.ID, `{}`), 400)
	want(e.doAs(e.keyB, "PATCH", "/api-keys/not-a-uuid", `{"name":"x"}`), 400)
	want(e.doAs(e.keyB, "DELETE", "/api-keys/"+made.ID, ""), 204)
	want(e.doAs(made.Key, "GET", "/api-keys", ""), 401)
	if msg := want(e.doAs(e.keyB, "DELETE", "/api-keys/"+made.ID, ""), 404).errorMessage(t); msg != "id not found" {
		t.Errorf("DELETE of a deleted key: %q", msg)
	}
	want(e.doAs(e.keyB, "DELETE", "/api-keys/key_0123456789abcdef", ""), 400)
}

// TestKeysOfAnotherTeam: one team can neither list, rename nor delete
// another team's keys; the answers are those of an unknown key.
func TestKeysOfAnotherTeam(t *testing.T) {
	e := newEnv(t)
	var made createdKey
	e.doAs(e.keyB, "POST", "/api-keys", `{"name":"b-ci"}`).decode(t, &made)
	var keys []teamKeyJSON
	e.do("GET", "/api-keys", "").decode(t, &keys)
	for _, k := range keys {
		if k.ID == made.ID || k.Name == "b" {
			t.Errorf("the default team lists team B's key %+v", k)
		}
	}
	unknown := "00000000-0000-4000-8000-000000000000"
	for _, tt := range []struct{ method, body string }{{"PATCH", `{"name":"mine now"}`}, {"DELETE", ""}} {
		got := e.do(tt.method, "/api-keys/"+made.ID, tt.body)
		ref := e.do(tt.method, "/api-keys/"+unknown, tt.body)
		if got.Status != 404 || ref.Status != 404 || string(got.Body) != string(ref.Body) {
			t.Errorf("%s of team B's key: %d %s; of an unknown key: %d %s", tt.method, got.Status, got.Body, ref.Status, ref.Body)
		}
	}
	var teams []teamJSON
	e.doAs(made.Key, "GET", "/teams", "").decode(t, &teams)
	if len(teams) != 1 || teams[0].TeamID != e.teamB.ID {
		t.Fatalf("team B's key after the attempts: %+v", teams)
	}
	e.doAs(e.keyB, "GET", "/api-keys", "").decode(t, &keys)
	for _, k := range keys {
		if k.ID == made.ID && k.Name != "b-ci" {
			t.Errorf("the default team renamed team B's key to %q", k.Name)
		}
	}
}
