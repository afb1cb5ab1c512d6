package vm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ZFSRecipe is the archive role's image: the lab's image with OpenZFS from
// Debian's contrib component, its kernel module built natively on the
// host in a chroot of the image (dkms under TCG did not finish in 25
// minutes), so guests boot with zfs.ko already in /lib/modules.
type ZFSRecipe struct {
	Base Recipe
	// Component holds the packages (bookworm's OpenZFS is in contrib). It
	// is added to a sources list inside the chroot for the build only; the
	// host's apt sources are never touched.
	Component string
	// Packages are installed with apt-get in the chroot, besides the
	// linux-headers of the image's own kernel.
	Packages []string
}

// zfsLayerVersion is part of the layer's key: bump it when BuildZFS changes
// what it makes from the same recipe.
const zfsLayerVersion = "1"

// DefaultZFSRecipe is DefaultRecipe with what the archive role installs:
// zfsutils-linux and zfs-dkms, and smartmontools for the SMART jobs.
func DefaultZFSRecipe() ZFSRecipe {
	return ZFSRecipe{Base: DefaultRecipe(), Component: "contrib",
		Packages: []string{"zfs-dkms", "zfsutils-linux", "smartmontools"}}
}

// Hash names the layer in the cache: the base recipe's hash (so a new base
// makes a new layer), the layer's own recipe and the builder's version.
func (z ZFSRecipe) Hash() string { return layerHash("zfs", zfsLayerVersion, z.Base, z) }

// ZFSCacheDir is where ZFS layers are kept: a directory of their own in the
// cache, so the plain image's pruning and the layers' never meet. The
// debootstrap stage is the plain image's, shared.
func ZFSCacheDir(cacheDir string) string { return filepath.Join(cacheDir, "zfs") }

// ZFSCached says whether the layer for z is built and ready in cacheDir.
func ZFSCached(cacheDir string, z ZFSRecipe) bool {
	_, err := os.Stat(filepath.Join(ZFSCacheDir(cacheDir), z.Hash(), "ready"))
	return err == nil
}

// ZFSBuild is what the layer's build measured and found, kept beside the
// image as zfs-build.json so a cached layer still says how it was made.
type ZFSBuild struct {
	Kernel string `json:"kernel"` // the image's kernel, the module's target
	Module string `json:"module"` // dkms status line, e.g. "zfs/2.1.11, 6.1.0-50-amd64, x86_64: installed"
	// Vermagic is the built zfs.ko's, as modinfo reads it.
	Vermagic string `json:"vermagic"`
	// Packages is apt-get update and install in the chroot; ModuleBuild
	// is `dkms autoinstall -k KERNEL`, the native module build alone.
	Packages    time.Duration `json:"packages_ns"`
	ModuleBuild time.Duration `json:"module_build_ns"`
}

// zfsBuildFile is the record of the build in the layer's directory.
const zfsBuildFile = "zfs-build.json"

// ReadZFSBuild reads the record a layer's build left beside img.
func ReadZFSBuild(img *Image) (*ZFSBuild, error) {
	b, err := os.ReadFile(filepath.Join(img.Dir, zfsBuildFile))
	if err != nil {
		return nil, err
	}
	var zb ZFSBuild
	return &zb, json.Unmarshal(b, &zb)
}

// BuildZFS returns the ZFS image for z under cacheDir, building it first
// when the cache does not hold it: the plain image's debootstrap stage
// (shared with it, made if missing), the lab's configuration, then in a
// chroot of the tree apt-get installs the packages with the headers of the
// image's kernel and `dkms autoinstall -k KERNEL` builds the module with
// the host's CPUs. The plain image and its cache are left as they are.
func BuildZFS(ctx context.Context, cacheDir string, z ZFSRecipe, log io.Writer) (*Image, error) {
	if log == nil {
		log = io.Discard
	}
	if err := needUnshare("ZFS"); err != nil {
		return nil, err
	}
	return buildLayer(ctx, cacheDir, ZFSCacheDir(cacheDir), z.Hash(), z.Base, &layer{meta: z, apply: func(ctx context.Context, tree, dst string, log io.Writer) error {
		zb, err := installZFS(ctx, tree, z, log)
		if err != nil {
			return fmt.Errorf("ZFS layer: %w", err)
		}
		b, _ := json.MarshalIndent(zb, "", "  ")
		return os.WriteFile(filepath.Join(dst, zfsBuildFile), append(b, '\n'), 0o644)
	}}, log)
}

// chrootEnv is the environment of every program run in the chroot: the
// host's PATH may lack the sbin directories dpkg and dkms need.
var chrootEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}

// inChroot runs argv chrooted into tree, with /proc, /sys and /dev mounted
// in a private mount namespace of its own: the mounts end with the
// process, whatever happens, and the host never sees them.
func inChroot(ctx context.Context, log io.Writer, tree string, argv ...string) error {
	const script = `set -e
t=$1; shift
mount -t proc proc "$t/proc"
mount --rbind /sys "$t/sys"
mount --bind /dev "$t/dev"
exec chroot "$t" "$@"`
	return runEnv(ctx, log, chrootEnv, append([]string{"unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", script, "sh", tree}, argv...)...)
}

// installZFS is the layer: packages, the native module build, checks that
// the module is there for the image's kernel, and a tidy tree.
func installZFS(ctx context.Context, tree string, z ZFSRecipe, log io.Writer) (*ZFSBuild, error) {
	kver, err := imageKernel(tree)
	if err != nil {
		return nil, err
	}
	zb := &ZFSBuild{Kernel: kver}
	write := func(p, content string, mode os.FileMode) error {
		full := filepath.Join(tree, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		return os.WriteFile(full, []byte(content), mode)
	}
	const (
		policy  = "usr/sbin/policy-rc.d"
		noAuto  = "etc/dkms/no-autoinstall"
		sources = "etc/apt/sources.list.d/borgkit-vm-zfs.list"
	)
	// No service starts in the chroot, and the packages' own hooks build
	// nothing: the build is the explicit dkms run below, timed alone.
	if err := write(policy, "#!/bin/sh\nexit 101\n", 0o755); err != nil {
		return nil, err
	}
	if err := write(noAuto, "", 0o644); err != nil {
		return nil, err
	}
	if err := write(sources, fmt.Sprintf("deb %s %s %s\n", z.Base.Mirror, z.Base.Suite, z.Component), 0o644); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := inChroot(ctx, log, tree, "apt-get", "update", "-q"); err != nil {
		return nil, err
	}
	if err := inChroot(ctx, log, tree, "apt-cache", "policy", "zfs-dkms", "linux-headers-"+kver); err != nil {
		return nil, err
	}
	install := append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends", "linux-headers-" + kver}, z.Packages...)
	if err := inChroot(ctx, log, tree, install...); err != nil {
		return nil, err
	}
	zb.Packages = time.Since(start)
	fmt.Fprintf(log, "vm: ZFS layer: packages installed in %s\n", zb.Packages.Round(time.Second))

	// With autoinstall disabled, zfs-dkms's postinst leaves the module
	// out of dkms's tree too; add it from its sources, then build.
	srcs, _ := filepath.Glob(filepath.Join(tree, "usr/src/zfs-*/dkms.conf"))
	if len(srcs) != 1 {
		return nil, fmt.Errorf("want one zfs source tree with a dkms.conf under %s/usr/src, found %q", tree, srcs)
	}
	module := strings.Replace(filepath.Base(filepath.Dir(srcs[0])), "-", "/", 1) // zfs/2.1.11
	if err := inChroot(ctx, log, tree, "dkms", "add", module); err != nil {
		return nil, err
	}
	start = time.Now()
	if err := inChroot(ctx, log, tree, "dkms", "autoinstall", "-k", kver); err != nil {
		return nil, fmt.Errorf("%w%s", err, dkmsMakeLog(tree))
	}
	zb.ModuleBuild = time.Since(start)
	fmt.Fprintf(log, "vm: ZFS layer: dkms autoinstall -k %s took %s (native, in the chroot)\n", kver, zb.ModuleBuild.Round(time.Second))

	var out strings.Builder
	if err := inChroot(ctx, io.MultiWriter(log, &out), tree, "dkms", "status", "-k", kver); err != nil {
		return nil, err
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "zfs/") && strings.HasSuffix(strings.TrimSpace(l), ": installed") {
			zb.Module = strings.TrimSpace(l)
		}
	}
	if zb.Module == "" {
		return nil, fmt.Errorf("dkms status -k %s shows no installed zfs module:\n%s%s", kver, out.String(), dkmsMakeLog(tree))
	}
	out.Reset()
	if err := inChroot(ctx, io.MultiWriter(log, &out), tree, "modinfo", "-k", kver, "-F", "vermagic", "zfs"); err != nil {
		return nil, err
	}
	zb.Vermagic = strings.TrimSpace(out.String())
	if !strings.HasPrefix(zb.Vermagic, kver+" ") {
		return nil, fmt.Errorf("zfs.ko has vermagic %q, not the image's kernel %s", zb.Vermagic, kver)
	}

	// The tree as a guest should see it: the build's scaffolding gone, the
	// image's apt sources as debootstrap left them, and no monthly scrub
	// or trim from zfsutils-linux's cron file in the middle of a test (the
	// archive role schedules its own).
	for _, p := range []string{policy, noAuto, sources, "etc/cron.d/zfsutils-linux"} {
		if err := os.Remove(filepath.Join(tree, p)); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	if err := removeGlob(filepath.Join(tree, "var/lib/apt/lists/*_"+z.Component+"_*")); err != nil {
		return nil, err
	}
	if err := removeGlob(filepath.Join(tree, "var/cache/apt/archives/*.deb")); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(tree, "var/lib/dkms", module, "build")); err != nil {
		return nil, err
	}
	// smartd finds no SMART device on virtio disks and fails every boot.
	if err := inChroot(ctx, log, tree, "systemctl", "mask", "smartmontools.service"); err != nil {
		return nil, err
	}
	return zb, nil
}

// dkmsMakeLog is the tail of the zfs module's make.log, for an error.
func dkmsMakeLog(tree string) string {
	logs, _ := filepath.Glob(filepath.Join(tree, "var/lib/dkms/zfs/*/build/make.log"))
	if len(logs) == 0 {
		return ""
	}
	b, err := os.ReadFile(logs[0])
	if err != nil {
		return ""
	}
	return "\nmake.log (" + logs[0] + "):" + lastLines(b, 30)
}
