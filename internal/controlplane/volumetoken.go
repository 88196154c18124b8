package controlplane

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"lelantos.dev/lelantos/internal/store"
)

// A volume's content token is a JWT (HS256) signed with the volume's own key, which
// only the store holds: deleting the volume voids every token of it. It names the
// team (sub), the volume (volid) and when it expires, and has an ID of its own (jti),
// so that no two are alike; only Lelantos reads it.
const (
	volumeTokenIssuer   = "lelantos"
	volumeTokenAudience = "lelantos-volume-content"
)

// volumeClaims are a volume token's claims.
type volumeClaims struct {
	VolumeID string `json:"volid"`
	jwt.RegisteredClaims
}

// volumeToken mints a content token for volume v, valid for the configured time.
func (s *Service) volumeToken(v *store.Volume) (string, error) {
	key, err := hex.DecodeString(v.TokenKey)
	if err != nil || len(key) == 0 {
		return "", internal("sign volume token", fmt.Errorf("volume %s has no usable key", v.ID))
	}
	now := s.now()
	claims := volumeClaims{
		VolumeID: v.ID,
		RegisteredClaims: jwt.RegisteredClaims{
			ID: randomHex(12), Issuer: volumeTokenIssuer, Subject: v.TeamID, Audience: jwt.ClaimStrings{volumeTokenAudience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.VolumeTokenTTL)),
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		return "", internal("sign volume token", err)
	}
	return tok, nil
}

// errVolumeToken is the one answer to every token that does not open a volume, so
// that a caller learns nothing of which check failed.
func errVolumeToken(id string) error {
	return newError(ErrUnauthenticated, "volume %s: missing, invalid or expired token", id)
}

// checkVolumeToken returns the volume that tok opens, which must be volume id.
func (s *Service) checkVolumeToken(ctx context.Context, id, tok string) (*store.Volume, error) {
	if tok == "" || !validVolumeID(id) {
		return nil, errVolumeToken(id)
	}
	var (
		vol       *store.Volume
		claims    volumeClaims
		lookupErr error // the store failing, not the token
	)
	_, err := jwt.ParseWithClaims(tok, &claims, func(t *jwt.Token) (any, error) {
		c, ok := t.Claims.(*volumeClaims)
		if !ok || c.VolumeID != id {
			return nil, errors.New("token of another volume")
		}
		v, err := s.store.GetVolume(ctx, id)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				lookupErr = err
			}
			return nil, err
		}
		if v.TeamID != c.Subject {
			return nil, errors.New("token of another team")
		}
		key, err := hex.DecodeString(v.TokenKey)
		if err != nil || len(key) == 0 {
			return nil, errors.New("volume has no usable key")
		}
		vol = v
		return key, nil
	}, jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithIssuer(volumeTokenIssuer),
		jwt.WithAudience(volumeTokenAudience), jwt.WithExpirationRequired(), jwt.WithTimeFunc(s.now),
		jwt.WithLeeway(5*time.Second))
	if lookupErr != nil {
		return nil, internal("check volume token", lookupErr)
	}
	if err != nil {
		return nil, errVolumeToken(id)
	}
	return vol, nil
}
