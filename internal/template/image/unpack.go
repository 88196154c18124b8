package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"

	"lelantos.dev/lelantos/internal/saferoot"
)

// Unpack applies the image's layers in order to the top of tree, with their
// whiteouts, checking each against its digest. limits bound the layers together.
func (img *Image) Unpack(ctx context.Context, layout, tree *saferoot.Root, limits saferoot.Limits) (saferoot.ExtractStats, error) {
	var total saferoot.ExtractStats
	limits = limits.WithDefaults()
	for i, l := range img.Layers {
		left := limits
		left.Bytes -= total.Bytes
		left.Entries -= total.Entries
		switch {
		case left.Bytes <= 0:
			return total, fmt.Errorf("layer %d: %w", i+1, &saferoot.LimitError{What: "image content", Limit: limits.Bytes})
		case left.Entries <= 0:
			return total, fmt.Errorf("layer %d: %w", i+1, &saferoot.LimitError{What: "archive entries", Limit: limits.Entries})
		}
		st, err := unpackLayer(ctx, layout, tree, l, left)
		total.Bytes, total.Entries, total.Devices = total.Bytes+st.Bytes, total.Entries+st.Entries, total.Devices+st.Devices
		if err != nil {
			return total, fmt.Errorf("layer %d: %w", i+1, err)
		}
	}
	return total, nil
}

func unpackLayer(ctx context.Context, layout, tree *saferoot.Root, l Layer, limits saferoot.Limits) (saferoot.ExtractStats, error) {
	f, err := layout.Open(l.Name)
	if errors.Is(err, fs.ErrNotExist) {
		return saferoot.ExtractStats{}, fmt.Errorf("blob %s is missing from the layout", l.Name)
	}
	if err != nil {
		return saferoot.ExtractStats{}, err
	}
	defer f.Close()
	v := &verifier{r: f, want: l.Digest, h: sha256.New()}
	st, err := tree.Extract(ctx, v, ".", saferoot.ExtractOptions{Whiteouts: true, Limits: limits})
	if err != nil {
		return st, err
	}
	return st, v.check()
}

// verifier hashes what is read through it, to check a layer against its digest.
type verifier struct {
	r    io.Reader
	want string
	h    hash.Hash
}

// Read implements io.Reader.
func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	return n, err
}

// check drains the rest of the stream and compares the digest.
func (v *verifier) check() error {
	if v.want == "" {
		return nil
	}
	if _, err := io.Copy(io.Discard, v); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(v.h.Sum(nil)); got != v.want {
		return fmt.Errorf("layer does not match its digest %s", v.want)
	}
	return nil
}
