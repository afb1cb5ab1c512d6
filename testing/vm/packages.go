package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// PackageLayer is the lab's image with a few more Debian packages, for the
// scenarios that need them: apt-get installs them in a chroot of the
// configured tree on the host, as the ZFS layer does. The plain image, its
// cache key and snapshots, and the flavours made from the same recipe
// (arm64, Debian 13) stay as they are, so no other test pays for the
// packages with a rebuild.
type PackageLayer struct {
	// Name is the layer's directory in the cache.
	Name     string
	Base     Recipe
	Packages []string
}

// packageLayerVersion is part of the layer's key: bump it when
// BuildPackageLayer changes what it makes from the same recipe.
const packageLayerVersion = "1"

// NspawnLayer is john-ai as a host of nspawn containers: systemd-container
// (machinectl, systemd-nspawn, systemd-machined) of the image's own systemd.
func NspawnLayer() PackageLayer {
	return PackageLayer{Name: "nspawn", Base: DefaultRecipe(), Packages: []string{"systemd-container"}}
}

// Hash names the layer in the cache: the base recipe's hash (a new base
// makes a new layer), the layer's own recipe and the builder's version.
func (p PackageLayer) Hash() string { return layerHash("package", packageLayerVersion, p.Base, p) }

// layerHash names a layer of kind in the cache: its builder's version,
// the base recipe's hash (a new base makes a new layer) and its recipe.
func layerHash(kind, version string, base Recipe, recipe any) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s layer %s\nbase %s\n", kind, version, base.Hash())
	j, _ := json.Marshal(recipe)
	h.Write(j)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// needUnshare says a layer cannot be built here without unshare.
func needUnshare(layer string) error {
	if _, err := exec.LookPath("unshare"); err != nil {
		return fmt.Errorf("the %s layer needs unshare (util-linux) to mount /proc in its chroot: %w", layer, err)
	}
	return nil
}

// buildLayer is build of a layer's image named key under outDir; a new
// one removes the other layers there: each is gigabytes, and a recipe
// that changed will not come back.
func buildLayer(ctx context.Context, cacheDir, outDir, key string, base Recipe, l *layer, log io.Writer) (*Image, error) {
	img, err := build(ctx, cacheDir, outDir, key, base, l, log)
	if err == nil && img.Built > 0 {
		pruneDirs(outDir, map[string]bool{key: true}, log)
	}
	return img, err
}

// BuildPackageLayer returns the layer's image under cacheDir/NAME,
// building it first when the cache does not hold it. The plain image comes
// first, under its own lock: its debootstrap stage is the layer's start,
// and a stage two processes made at once would be neither's.
func BuildPackageLayer(ctx context.Context, cacheDir string, p PackageLayer, log io.Writer) (*Image, error) {
	if log == nil {
		log = io.Discard
	}
	if err := needUnshare(p.Name); err != nil {
		return nil, err
	}
	if _, err := Build(ctx, cacheDir, p.Base, log); err != nil {
		return nil, err
	}
	return buildLayer(ctx, cacheDir, filepath.Join(cacheDir, p.Name), p.Hash(), p.Base, &layer{meta: p, apply: func(ctx context.Context, tree, _ string, log io.Writer) error {
		if err := installPackages(ctx, tree, p.Packages, log); err != nil {
			return fmt.Errorf("%s layer: %w", p.Name, err)
		}
		return nil
	}}, log)
}

// installPackages apt-get installs pkgs (no recommends) in tree, with no
// service started in the chroot, and leaves no package lists or archives.
// The sources are the ones debootstrap wrote: the recipe's mirror and suite.
func installPackages(ctx context.Context, tree string, pkgs []string, log io.Writer) error {
	policy := filepath.Join(tree, "usr/sbin/policy-rc.d")
	if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		return err
	}
	if err := inChroot(ctx, log, tree, "apt-get", "update", "-q"); err != nil {
		return err
	}
	if err := inChroot(ctx, log, tree, append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends"}, pkgs...)...); err != nil {
		return err
	}
	if err := os.Remove(policy); err != nil {
		return err
	}
	if err := removeGlob(filepath.Join(tree, "var/lib/apt/lists/*_dists_*")); err != nil {
		return err
	}
	return removeGlob(filepath.Join(tree, "var/cache/apt/archives/*.deb"))
}
