package api

import (
	"cmp"
	"time"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// teamUserJSON is E2B's TeamUser; Lelantos has no users, so createdBy is
// always null.
type teamUserJSON struct {
	ID    string `json:"id"`
	Email string `json:"email"`
}

// templateJSON is the Template shape of GET /templates.
type templateJSON struct {
	TemplateID    string        `json:"templateID"`
	BuildID       string        `json:"buildID"`
	CPUCount      int           `json:"cpuCount"`
	MemoryMB      int           `json:"memoryMB"`
	DiskSizeMB    int           `json:"diskSizeMB"`
	Public        bool          `json:"public"`
	Aliases       []string      `json:"aliases"`
	Names         []string      `json:"names"`
	CreatedAt     time.Time     `json:"createdAt"`
	UpdatedAt     time.Time     `json:"updatedAt"`
	CreatedBy     *teamUserJSON `json:"createdBy"`
	LastSpawnedAt *time.Time    `json:"lastSpawnedAt"`
	SpawnCount    int64         `json:"spawnCount"`
	BuildCount    int           `json:"buildCount"`
	EnvdVersion   string        `json:"envdVersion"`
	BuildStatus   string        `json:"buildStatus"`
}

// templateBuildJSON is the TemplateBuild shape, one build of a template.
type templateBuildJSON struct {
	BuildID     string     `json:"buildID"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	FinishedAt  *time.Time `json:"finishedAt,omitempty"`
	CPUCount    int        `json:"cpuCount"`
	MemoryMB    int        `json:"memoryMB"`
	DiskSizeMB  int        `json:"diskSizeMB"`
	EnvdVersion string     `json:"envdVersion"`
}

// templateWithBuildsJSON is the TemplateWithBuilds shape of
// GET /templates/{templateID}.
type templateWithBuildsJSON struct {
	TemplateID    string              `json:"templateID"`
	Public        bool                `json:"public"`
	Aliases       []string            `json:"aliases"`
	Names         []string            `json:"names"`
	CreatedAt     time.Time           `json:"createdAt"`
	UpdatedAt     time.Time           `json:"updatedAt"`
	LastSpawnedAt *time.Time          `json:"lastSpawnedAt"`
	SpawnCount    int64               `json:"spawnCount"`
	Builds        []templateBuildJSON `json:"builds"`
}

// buildStartedJSON answers POST /templates.
type buildStartedJSON struct {
	TemplateID string `json:"templateID"`
	BuildID    string `json:"buildID"`
}

// buildLogEntryJSON is E2B's BuildLogEntry.
type buildLogEntryJSON struct {
	Timestamp time.Time `json:"timestamp"`
	Message   string    `json:"message"`
	Level     string    `json:"level"`
	Step      string    `json:"step,omitempty"`
}

// buildReasonJSON says why a build failed, and at which step: "base", a
// step's number (a Dockerfile's line) or "finalize".
type buildReasonJSON struct {
	Message string `json:"message"`
	Step    string `json:"step,omitempty"`
}

// buildInfoJSON is the TemplateBuildInfo shape of the build status route.
type buildInfoJSON struct {
	TemplateID string              `json:"templateID"`
	BuildID    string              `json:"buildID"`
	Status     string              `json:"status"`
	Logs       []string            `json:"logs"`
	LogEntries []buildLogEntryJSON `json:"logEntries"`
	Reason     *buildReasonJSON    `json:"reason,omitempty"`
}

// buildLogsJSON answers the build logs route.
type buildLogsJSON struct {
	Logs []buildLogEntryJSON `json:"logs"`
}

// names are a template's names in its team: its name (the ID for
// templates of the default team), then its aliases.
func names(t *store.Template) []string {
	return append([]string{cmp.Or(t.Name, t.ID)}, t.Aliases...)
}

// aliases are the names a template is known by: its team's name for it,
// then its aliases (E2B's CLI shows them as the template's name). Never nil,
// so that it encodes as [].
func aliases(t *store.Template) []string {
	return append([]string{cmp.Or(t.Name, t.ID)}, t.Aliases...)
}

// toTemplate builds the Template shape.
func toTemplate(i *controlplane.TemplateInfo) templateJSON {
	t := i.Template
	return templateJSON{
		TemplateID: t.ID, BuildID: t.BuildID, CPUCount: t.CPUCount, MemoryMB: t.MemoryMB, DiskSizeMB: t.DiskSizeMB,
		Public: t.Public, Aliases: aliases(t), Names: names(t), CreatedAt: t.CreatedAt.UTC(), UpdatedAt: t.UpdatedAt.UTC(),
		BuildCount: len(i.Builds), EnvdVersion: t.EnvdVersion, BuildStatus: i.BuildStatus(),
	}
}

// toTemplateWithBuilds builds the TemplateWithBuilds shape. Builds carry the
// template's current sizes: the builder keeps no sizes per build.
func toTemplateWithBuilds(i *controlplane.TemplateInfo) templateWithBuildsJSON {
	t := i.Template
	out := templateWithBuildsJSON{
		TemplateID: t.ID, Public: t.Public, Aliases: aliases(t), Names: names(t),
		CreatedAt: t.CreatedAt.UTC(), UpdatedAt: t.UpdatedAt.UTC(), Builds: make([]templateBuildJSON, 0, len(i.Builds)),
	}
	for _, b := range i.Builds {
		updated := b.StartedAt.UTC()
		var finished *time.Time
		if b.FinishedAt != nil {
			f := b.FinishedAt.UTC()
			updated, finished = f, &f
		}
		out.Builds = append(out.Builds, templateBuildJSON{
			BuildID: b.BuildID, Status: b.Status, CreatedAt: b.StartedAt.UTC(), UpdatedAt: updated, FinishedAt: finished,
			CPUCount: t.CPUCount, MemoryMB: t.MemoryMB, DiskSizeMB: t.DiskSizeMB, EnvdVersion: t.EnvdVersion,
		})
	}
	return out
}

// toBuildLogEntry builds a BuildLogEntry.
func toBuildLogEntry(e controlplane.TemplateLogEntry) buildLogEntryJSON {
	level := e.Level
	if level == "" {
		level = "info"
	}
	return buildLogEntryJSON{Timestamp: e.Timestamp.UTC(), Message: e.Message, Level: level, Step: e.Step}
}

// toBuildInfo builds the TemplateBuildInfo shape.
func toBuildInfo(b *controlplane.TemplateBuild, entries []controlplane.TemplateLogEntry) buildInfoJSON {
	out := buildInfoJSON{TemplateID: b.TemplateID, BuildID: b.BuildID, Status: b.Status,
		Logs: make([]string, 0, len(entries)), LogEntries: make([]buildLogEntryJSON, 0, len(entries))}
	for _, e := range entries {
		out.Logs = append(out.Logs, e.Message)
		out.LogEntries = append(out.LogEntries, toBuildLogEntry(e))
	}
	if b.Status == controlplane.BuildError {
		msg := b.Reason
		if msg == "" {
			msg = "the build failed"
		}
		out.Reason = &buildReasonJSON{Message: msg, Step: b.ReasonStep}
	}
	return out
}
