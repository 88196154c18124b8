package api

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// unknownSandbox is a well-formed sandbox ID no sandbox has.
const unknownSandbox = "zzzzzzzzzzzzzzzzzzzz"

// sandboxRoutes are the routes that take a sandbox ID, with a body that
// would succeed on the caller's own sandbox.
var sandboxRoutes = []struct{ method, path, body string }{
	{"GET", "/sandboxes/%s", ""},
	{"POST", "/sandboxes/%s/connect", `{"timeout":600}`},
	{"POST", "/v2/sandboxes/%s/connect", `{"timeout":600}`},
	{"POST", "/sandboxes/%s/timeout", `{"timeout":5}`},
	{"POST", "/sandboxes/%s/refreshes", `{"duration":600}`},
	{"GET", "/sandboxes/%s/logs", ""},
	{"GET", "/sandboxes/%s/metrics", ""},
	{"POST", "/sandboxes/%s/pause", ""},
	{"PUT", "/sandboxes/%s/network", `{"denyOut":["1.2.3.4"]}`},
	{"POST", "/sandboxes/%s/resume", `{"timeout":600}`},
	{"DELETE", "/sandboxes/%s", ""},
}

// TestCrossTeamSandboxRoutes: with team A's key a sandbox is made (and one
// paused); team B's key then calls every sandbox route on them. Each answer
// is the 404 an unknown ID gets, byte for byte (with the ID swapped), none
// carries a token of A's sandbox, and A's sandboxes are as they were.
func TestCrossTeamSandboxRoutes(t *testing.T) {
	e := newEnv(t)
	var running, paused sandboxJSON
	e.do("POST", "/v2/sandboxes", `{"templateID":"base","metadata":{"owner":"a"},"network":{"allowPublicTraffic":false}}`).decode(t, &running)
	e.do("POST", "/v2/sandboxes", `{}`).decode(t, &paused)
	if r := e.do("POST", "/sandboxes/"+paused.SandboxID+"/pause", ""); r.Status != 204 {
		t.Fatalf("pause: %d %s", r.Status, r.Body)
	}
	for _, victim := range []sandboxJSON{running, paused} {
		before, err := e.db.GetSandbox(context.Background(), victim.SandboxID)
		if err != nil {
			t.Fatal(err)
		}
		for _, rt := range sandboxRoutes {
			path := strings.Replace(rt.path, "%s", victim.SandboxID, 1)
			got := e.doAs(e.keyB, rt.method, path, rt.body)
			ref := e.doAs(e.keyB, rt.method, strings.Replace(rt.path, "%s", unknownSandbox, 1), rt.body)
			want := strings.ReplaceAll(string(ref.Body), unknownSandbox, victim.SandboxID)
			if got.Status != 404 || ref.Status != 404 || string(got.Body) != want {
				t.Errorf("team B %s %s: %d %s; an unknown ID: %d %s", rt.method, path, got.Status, got.Body, ref.Status, ref.Body)
			}
			for _, secret := range []string{victim.EnvdAccessToken, before.TrafficAccessToken} {
				if secret != "" && strings.Contains(string(got.Body), secret) {
					t.Errorf("team B %s %s read a token of the sandbox", rt.method, path)
				}
			}
		}
		after, err := e.db.GetSandbox(context.Background(), victim.SandboxID)
		if err != nil || after.Version != before.Version || after.State != before.State || !after.EndAt.Equal(before.EndAt) {
			t.Errorf("team B changed %s: %+v -> %+v (%v)", victim.SandboxID, before, after, err)
		}
	}
	for _, path := range []string{"/sandboxes", "/v2/sandboxes", "/v2/sandboxes?state=paused", "/sandboxes?metadata=owner%3Da"} {
		var listed []listedJSON
		e.doAs(e.keyB, "GET", path, "").decode(t, &listed)
		if len(listed) != 0 {
			t.Errorf("team B's GET %s lists %+v", path, listed)
		}
	}
	var mine []listedJSON
	e.do("GET", "/v2/sandboxes", "").decode(t, &mine)
	if len(mine) != 2 {
		t.Errorf("team A lists %d sandboxes, want its 2", len(mine))
	}
	if r := e.do("GET", "/sandboxes/"+running.SandboxID, ""); r.Status != 200 {
		t.Errorf("team A's own GET: %d", r.Status)
	}
}

// TestCrossTeamTemplateRoutes: team B cannot see, use, delete or follow the
// builds of team A's private template, can use the public base, and its own
// build of the same name makes a template of its own.
func TestCrossTeamTemplateRoutes(t *testing.T) {
	e := newEnv(t)
	var started buildStartedJSON
	e.do("POST", "/templates", `{"name":"web","dockerfile":"FROM base\n"}`).decode(t, &started)
	if err := e.builder.finish(started.BuildID, ""); err != nil {
		t.Fatal(err)
	}
	same := func(what string, got, ref *response, refName, name string) {
		t.Helper()
		if got.Status != ref.Status || string(got.Body) != strings.ReplaceAll(string(ref.Body), refName, name) {
			t.Errorf("%s: %d %s; for an unknown one: %d %s", what, got.Status, got.Body, ref.Status, ref.Body)
		}
	}
	for _, rt := range []struct{ method, path string }{
		{"GET", "/templates/%s"},
		{"DELETE", "/templates/%s"},
		{"GET", "/templates/%s/builds/" + started.BuildID + "/status"},
		{"GET", "/templates/%s/builds/" + started.BuildID + "/logs"},
	} {
		got := e.doAs(e.keyB, rt.method, strings.Replace(rt.path, "%s", "web", 1), "")
		ref := e.doAs(e.keyB, rt.method, strings.Replace(rt.path, "%s", "nope", 1), "")
		if got.Status != 404 {
			t.Errorf("team B %s %s: %d", rt.method, rt.path, got.Status)
		}
		same("team B "+rt.method+" "+rt.path, got, ref, "nope", "web")
	}
	same("team B creates from A's template",
		e.doAs(e.keyB, "POST", "/v2/sandboxes", `{"templateID":"web"}`),
		e.doAs(e.keyB, "POST", "/v2/sandboxes", `{"templateID":"nope"}`), "nope", "web")
	var list []templateJSON
	e.doAs(e.keyB, "GET", "/templates", "").decode(t, &list)
	for _, tpl := range list {
		if tpl.TemplateID == "web" || tpl.TemplateID == "py" {
			t.Errorf("team B lists team A's template %s", tpl.TemplateID)
		}
	}
	// Team B's own web.
	var own buildStartedJSON
	if r := e.doAs(e.keyB, "POST", "/templates", `{"name":"web","dockerfile":"FROM web\n"}`); r.Status != 202 {
		t.Fatalf("team B builds web: %d %s", r.Status, r.Body)
	} else {
		r.decode(t, &own)
	}
	if own.TemplateID == "web" || !strings.HasPrefix(own.TemplateID, "web-") {
		t.Fatalf("team B's web got the ID %q", own.TemplateID)
	}
	from := e.builder.requests[own.BuildID].FromTemplate
	if tpl, err := from(context.Background(), "web"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FROM web in team B's build resolves to %+v, %v", tpl, err)
	}
	if tpl, err := from(context.Background(), "base"); err != nil || tpl.ID != "base" {
		t.Errorf("FROM base in team B's build: %+v, %v", tpl, err)
	}
	if err := e.builder.finish(own.BuildID, ""); err != nil {
		t.Fatal(err)
	}
	var sb sandboxJSON
	if r := e.doAs(e.keyB, "POST", "/v2/sandboxes", `{"templateID":"web"}`); r.Status != 201 {
		t.Fatalf("team B creates from its web: %d %s", r.Status, r.Body)
	} else {
		r.decode(t, &sb)
	}
	if sb.TemplateID != own.TemplateID || sb.Alias != "web" {
		t.Errorf("team B's sandbox of web: %+v", sb)
	}
	if r := e.doAs(e.keyB, "POST", "/v2/sandboxes", `{"templateID":"base"}`); r.Status != 201 {
		t.Errorf("team B creates from the public base: %d %s", r.Status, r.Body)
	}
	var a templateWithBuildsJSON
	e.do("GET", "/templates/web", "").decode(t, &a)
	if a.TemplateID != "web" || len(a.Builds) != 1 {
		t.Errorf("team A's web after team B's build: %+v", a)
	}
}

// TestQuotaAnswers: over a quota, creates, resumes and builds are 429s
// naming the quota and its value, without Retry-After (the harness checks
// that on every 429).
func TestQuotaAnswers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	one := 1
	e.teamB.Quotas = store.QuotaSettings{MaxSandboxes: &one, MaxBuilds: &one}
	if err := e.db.UpdateTeam(ctx, e.teamB); err != nil {
		t.Fatal(err)
	}
	var first sandboxJSON
	e.doAs(e.keyB, "POST", "/v2/sandboxes", `{}`).decode(t, &first)
	r := e.doAs(e.keyB, "POST", "/sandboxes", `{}`)
	if r.Status != 429 || r.errorMessage(t) != `team "beta" is at its limit of 1 concurrent sandboxes (max-sandboxes)` {
		t.Fatalf("a second create: %d %s", r.Status, r.Body)
	}
	if r := e.do("POST", "/v2/sandboxes", `{}`); r.Status != 201 {
		t.Fatalf("the default team is not limited: %d %s", r.Status, r.Body)
	}
	e.doAs(e.keyB, "POST", "/sandboxes/"+first.SandboxID+"/pause", "")
	var second sandboxJSON
	e.doAs(e.keyB, "POST", "/v2/sandboxes", `{}`).decode(t, &second)
	for _, path := range []string{"/sandboxes/%s/resume", "/sandboxes/%s/connect", "/v2/sandboxes/%s/connect"} {
		if r := e.doAs(e.keyB, "POST", strings.Replace(path, "%s", first.SandboxID, 1), `{}`); r.Status != 429 ||
			!strings.Contains(r.errorMessage(t), "(max-sandboxes)") {
			t.Errorf("POST %s over the quota: %d %s", path, r.Status, r.Body)
		}
	}
	e.teamB.Quotas = store.QuotaSettings{MaxMemoryMB: &one, MaxBuilds: &one}
	if err := e.db.UpdateTeam(ctx, e.teamB); err != nil {
		t.Fatal(err)
	}
	if r := e.doAs(e.keyB, "POST", "/v2/sandboxes", `{}`); r.Status != 429 ||
		!strings.HasPrefix(r.errorMessage(t), `team "beta" is at its limit of 1 MB of memory of running sandboxes (max-memory-mb)`) {
		t.Errorf("a create over max-memory-mb: %d %s", r.Status, r.Body)
	}

	if r := e.doAs(e.keyB, "POST", "/templates", `{"name":"a","dockerfile":"FROM base"}`); r.Status != 202 {
		t.Fatalf("a first build: %d %s", r.Status, r.Body)
	}
	if r := e.doAs(e.keyB, "POST", "/templates", `{"name":"b","dockerfile":"FROM base"}`); r.Status != 429 ||
		r.errorMessage(t) != `team "beta" is at its limit of 1 concurrent template builds (max-builds)` {
		t.Errorf("a second build: %d %s", r.Status, r.Body)
	}
}

// TestQuotaRaceThroughAPI: concurrent creates of one team on a slow node;
// exactly max-sandboxes of them get a 201, the others a 429.
func TestQuotaRaceThroughAPI(t *testing.T) {
	e := newEnv(t)
	two := 2
	e.teamB.Quotas = store.QuotaSettings{MaxSandboxes: &two}
	if err := e.db.UpdateTeam(context.Background(), e.teamB); err != nil {
		t.Fatal(err)
	}
	e.node.SetDelay(20 * time.Millisecond)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
	)
	for range 10 {
		wg.Go(func() {
			r := e.doAs(e.keyB, "POST", "/v2/sandboxes", `{}`)
			mu.Lock()
			codes[r.Status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[201] != 2 || codes[429] != 8 {
		t.Fatalf("answers %v, want two 201 and eight 429", codes)
	}
}
