package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// Accounts is what the /teams and /api-keys routes need: the caller's team
// and its keys; *controlplane.Accounts implements it. E2B authenticates
// these routes with a user's token; Lelantos has no users, so the caller's
// API key stands for its team.
type Accounts interface {
	Team(ctx context.Context, teamID string) (*store.Team, error)
	LoginKey(ctx context.Context, teamID string) (string, error)
	ListKeys(ctx context.Context, teamID string) ([]*store.APIKey, error)
	CreateKey(ctx context.Context, teamID, name string) (string, *store.APIKey, error)
	RenameKey(ctx context.Context, teamID, id, name string) error
	DeleteKey(ctx context.Context, teamID, id string) error
}

// teamJSON is an entry of GET /teams.
type teamJSON struct {
	TeamID    string `json:"teamID"`
	Name      string `json:"name"`
	APIKey    string `json:"apiKey"`
	IsDefault bool   `json:"isDefault"`
}

// keyMaskJSON is E2B's IdentifierMaskingDetails of a key.
type keyMaskJSON struct {
	Prefix            string `json:"prefix"`
	ValueLength       int    `json:"valueLength"`
	MaskedValuePrefix string `json:"maskedValuePrefix"`
	MaskedValueSuffix string `json:"maskedValueSuffix"`
}

// teamKeyJSON is E2B's TeamAPIKey; createdBy is always null (no users).
type teamKeyJSON struct {
	ID        string        `json:"id"`
	Name      string        `json:"name"`
	Mask      keyMaskJSON   `json:"mask"`
	CreatedAt time.Time     `json:"createdAt"`
	CreatedBy *teamUserJSON `json:"createdBy"`
	LastUsed  *time.Time    `json:"lastUsed"`
}

// createdKeyJSON is E2B's CreatedTeamAPIKey: the key shown once.
type createdKeyJSON struct {
	teamKeyJSON
	Key string `json:"key"`
}

// keyBody is the body of POST /api-keys and PATCH /api-keys/{id}.
type keyBody struct {
	Name *string `json:"name"`
}

// keyHexLen is the number of hex digits after an API key's prefix.
const keyHexLen = 40

// toTeamKey builds the TeamAPIKey shape of k.
func toTeamKey(k *store.APIKey) teamKeyJSON {
	hexPrefix := strings.TrimPrefix(k.Prefix, controlplane.APIKeyPrefix)
	out := teamKeyJSON{
		ID: k.ID, Name: k.Name, CreatedAt: k.CreatedAt.UTC(),
		Mask: keyMaskJSON{Prefix: controlplane.APIKeyPrefix, ValueLength: keyHexLen,
			MaskedValuePrefix: hexPrefix[:min(2, len(hexPrefix))], MaskedValueSuffix: k.Suffix},
	}
	if k.LastUsedAt != nil {
		t := k.LastUsedAt.UTC()
		out.LastUsed = &t
	}
	return out
}

// listTeams answers GET /teams: the caller's team, with a new key of it
// named "CLI login/configure", as E2B's CLI login expects.
func (h *handler) listTeams(w http.ResponseWriter, r *http.Request) {
	t, err := h.accounts.Team(r.Context(), teamOf(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	key, err := h.accounts.LoginKey(r.Context(), t.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, []teamJSON{{TeamID: t.ID, Name: t.Name, APIKey: key, IsDefault: true}})
}

// listKeys answers GET /api-keys: the team's active keys.
func (h *handler) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := h.accounts.ListKeys(r.Context(), teamOf(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]teamKeyJSON, 0, len(keys))
	for _, k := range keys {
		out = append(out, toTeamKey(k))
	}
	writeJSON(w, http.StatusOK, out)
}

// keyName reads the required name of a key body.
func (h *handler) keyName(w http.ResponseWriter, r *http.Request) (string, error) {
	var body keyBody
	if err := h.decodeBody(w, r, &body); err != nil {
		return "", err
	}
	if body.Name == nil {
		return "", badf("name: required")
	}
	if strings.TrimSpace(*body.Name) == "" {
		return "", badf("name: must not be empty")
	}
	return *body.Name, nil
}

// createKey answers POST /api-keys: 201 with the key, shown only here.
func (h *handler) createKey(w http.ResponseWriter, r *http.Request) {
	name, err := h.keyName(w, r)
	if err != nil {
		writeBad(w, err)
		return
	}
	plain, k, err := h.accounts.CreateKey(r.Context(), teamOf(r), name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, createdKeyJSON{teamKeyJSON: toTeamKey(k), Key: plain})
}

// renameKey answers PATCH /api-keys/{apiKeyID}: 202 without a body, as
// E2B's server does.
func (h *handler) renameKey(w http.ResponseWriter, r *http.Request) {
	name, err := h.keyName(w, r)
	if err != nil {
		writeBad(w, err)
		return
	}
	if err := h.accounts.RenameKey(r.Context(), teamOf(r), chi.URLParam(r, "apiKeyID"), name); err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// deleteKey answers DELETE /api-keys/{apiKeyID}: 204; the key stops working.
func (h *handler) deleteKey(w http.ResponseWriter, r *http.Request) {
	if err := h.accounts.DeleteKey(r.Context(), teamOf(r), chi.URLParam(r, "apiKeyID")); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}
