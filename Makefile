# borgkit — build, test, demo. `make test` is what CI runs.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

GO        ?= go
BIN       := bin/borgkit
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# Every architecture's build, by Debian name, for provisioning a host of
# another architecture (an arm64 or 32-bit Pi from an amd64 server):
# DEB_ARCH:GOARCH:GOARM. armhf is GOARM=6, which every Raspberry Pi runs.
ARCH_BUILDS := amd64:amd64: arm64:arm64: armhf:arm:6
# The go.mod's Go is fetched by the go command itself (module proxy) when
# the go on the PATH is older, e.g. Debian's from bookworm-backports; both
# Debian's golang and /usr/local/go default to GOTOOLCHAIN=local.
export GOTOOLCHAIN := auto
DEMO_ROOT ?= /tmp/borgkit-demo
STATICCHECK_VERSION := v0.8.2
# Debian packages the tests drive for real (borg, rsync, sshd, msmtp, findmnt, ...).
TEST_DEBS := borgbackup rsync openssh-server openssh-client msmtp cryptsetup-bin \
             logrotate util-linux fdisk e2fsprogs iproute2 systemd cron ca-certificates \
             libcapture-tiny-perl libconfig-inifiles-perl \
             libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-utils qemu-system-x86

.PHONY: go deb vm-arm64 vm-adopt vm-offline vm-nspawn vagrant vm-deps vm-zfs syncoid all build test lint vet fmt-check staticcheck man completion demo demo-root vm deps bench bench-go fuzz clean

all: build

# BUILD is go build with a progress line (testing/lab/cmd/build, the same
# printer provisioning and the drill use): a first build on a cold Go cache
# compiles about 260 packages per architecture, minutes on two cores, and
# says so as it goes. It needs only the standard library itself.
BUILD := bin/.build
$(BUILD): testing/lab/cmd/build/main.go provision/progress/progress.go | go
	@mkdir -p bin
	@echo "compiling testing/lab/cmd/build, go build with a progress line (on a cold Go cache: the standard library first)"
	$(GO) build -o $@ ./testing/lab/cmd/build

# build writes bin/borgkit for this machine and bin/builds/ARCH/borgkit
# for every architecture (static, CGO_ENABLED=0): provision looks for the
# builds beside the running program.
build: go $(BUILD)
	@GO=$(GO) $(BUILD) -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/borgkit
	@set -e; for b in $(ARCH_BUILDS); do IFS=: read -r deb goarch goarm <<< "$$b"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$goarch GOARM=$$goarm GO=$(GO) $(BUILD) -trimpath -ldflags '$(LDFLAGS)' -o bin/builds/$$deb/borgkit ./cmd/borgkit; \
	done

# deb builds bin/deb/borgkit_VERSION_ARCH.deb for every architecture with
# dpkg-deb (templates/deb/build) and checks them with lintian, which must
# report no error. The version is the tag without its v (v1.2.3: 1.2.3),
# else 0.0~git and the commit.
DEB_VERSION ?= $(shell echo '$(VERSION)' | sed -E 's/^v([0-9])/\1/; /^[0-9]/!s/^/0.0~git/; s/-/./g')
deb: build
	@command -v lintian >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian)
	rm -rf bin/deb
	@set -e; for b in $(ARCH_BUILDS); do templates/deb/build $(DEB_VERSION) $${b%%:*} bin/deb; done
	lintian --fail-on error --info bin/deb/*.deb
	@ls -l bin/deb

# go makes sure a go command is there: on a Debian 12 machine without one,
# Debian's golang from bookworm-backports (root; the go command then
# downloads the toolchain go.mod asks for, GOTOOLCHAIN=auto).
go:
	@if ! command -v $(GO) >/dev/null 2>&1; then \
	  echo "no go command: installing golang-go from bookworm-backports"; \
	  . /etc/os-release; test "$$VERSION_CODENAME" = bookworm || { echo "install Go >= 1.21 (https://go.dev/dl) and run make again" >&2; exit 1; }; \
	  test -f /etc/apt/sources.list.d/bookworm-backports.list || \
	    echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports golang-go ca-certificates git; \
	fi
	@$(GO) version

# deps installs what the tests and the demo run for real; root only.
deps:
	@missing=$$(for p in $(TEST_DEBS); do dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null | grep -q '^ii' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Debian's syncoid, unpacked rather than installed: the sanoid package
# depends on a ZFS implementation, the script only on perl.
SYNCOID_DIR := $(CURDIR)/.cache/sanoid
export BORGKIT_SYNCOID := $(SYNCOID_DIR)/usr/sbin/syncoid

syncoid:
	@test -x $(BORGKIT_SYNCOID) || { \
	  rm -rf $(SYNCOID_DIR) && mkdir -p $(SYNCOID_DIR) && cd $(SYNCOID_DIR) && \
	  { apt-get download -qq sanoid 2>/dev/null || { apt-get update -qq && apt-get download -qq sanoid; }; } && dpkg-deb -x sanoid_*.deb . && rm sanoid_*.deb; }

# test also proves the suite leaves nothing of borg's in the real home
# (testing/borghome): every borg a test starts keeps its state elsewhere.
BORG_HOME_STATE = ls -1 $(HOME)/.cache/borg $(HOME)/.config/borg/security 2>/dev/null | sort
test: go deps syncoid lint
	@$(BORG_HOME_STATE) > .borg-home-before
	$(GO) test -count=1 -timeout 60m ./...
	@$(BORG_HOME_STATE) | comm -13 .borg-home-before - > .borg-home-new; rm -f .borg-home-before; \
	if [ -s .borg-home-new ]; then echo "the tests left borg state in $(HOME):"; cat .borg-home-new; rm -f .borg-home-new; exit 1; fi; rm -f .borg-home-new

lint: go fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	staticcheck ./...

man: build
	$(BIN) man --dir man

completion: build
	mkdir -p completion
	$(BIN) completion bash > completion/borgkit.bash
	$(BIN) completion zsh > completion/_borgkit
	$(BIN) completion fish > completion/borgkit.fish

# demo runs the appliance end to end on this machine: two hosts in network
# namespaces with their own sshd, loop-device disks and a mail listener;
# provision both over SSH, back up, mirror, check, restore-test, write the
# recovery bundle, drill from the Pi's copy, show the dashboard, tear down.
demo: deps build
	@GO=$(GO) $(BUILD) -o bin/demo ./testing/lab/cmd/demo
	bin/demo --borgkit $(BIN)

# demo-root provisions john-ai and the Pi from the embedded example into
# $(DEMO_ROOT) with real borg, twice: the second run must report no changes.
# Diff bodies are left out; `bin/borgkit plan john-ai --root DIR` shows them.
demo-root: deps build
	rm -rf $(DEMO_ROOT)
	@echo "=== first run: creates everything"
	@set -o pipefail; $(BIN) provision john-ai --root $(DEMO_ROOT) | grep -v '^      '
	@echo "=== second run: must change nothing (exit 3 would mean pending changes)"
	$(BIN) provision john-ai --root $(DEMO_ROOT) --detailed-exitcode | tail -n 2
	@echo "=== the Pi, with the keys the server run made (its disk is skipped under --root)"
	@set -o pipefail; $(BIN) provision pi --root $(DEMO_ROOT)/pi --server-root $(DEMO_ROOT) | grep -v '^      ' | tail -n 8
	$(BIN) provision pi --root $(DEMO_ROOT)/pi --server-root $(DEMO_ROOT) --detailed-exitcode | tail -n 1
	@echo "=== files borgkit wrote (borg's own cache and security dirs left out):"
	@cd $(DEMO_ROOT) && find . -type f ! -path './root/.cache/*' ! -path './root/.config/*' ! -path './mnt/*' ! -path './pi/*' | sort
	@echo "=== borg repositories, opened with their generated passphrases:"
	@for r in $(DEMO_ROOT)/mnt/backup/*/; do n=$$(basename $$r); \
	  BORG_BASE_DIR=$(DEMO_ROOT)/root BORG_PASSCOMMAND="cat $(DEMO_ROOT)/etc/borgkit/keys/$$n.pass" \
	  borg info --json $$r | grep -m1 '"mode"' | sed "s|^ *|$$n: encryption |"; done

# vm runs the qemu VM lab (LUKS open, unlock at boot, reboots, the drill
# from a disk image): root, qemu-system-x86, debootstrap; tens of minutes
# under TCG with a cold image cache.
vm-deps:
	@command -v qemu-system-x86_64 >/dev/null && command -v qemu-system-aarch64 >/dev/null && command -v debootstrap >/dev/null && \
	  test -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 qemu-system-arm \
	    qemu-utils qemu-user-static binfmt-support debootstrap e2fsprogs xz-utils)
	@# The arm64 image's debootstrap runs arm64 programs through binfmt_misc.
	@test -e /proc/sys/fs/binfmt_misc/status || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	@test -e /proc/sys/fs/binfmt_misc/qemu-aarch64 || update-binfmts --enable qemu-aarch64

vm: deb vm-deps
	BORGKIT_VM=1 BORGKIT_VM_ZFS=$${BORGKIT_VM_ZFS:-0} BORGKIT_VM_ARM64=$${BORGKIT_VM_ARM64:-0} BORGKIT_VM_ADOPT=$${BORGKIT_VM_ADOPT:-0} BORGKIT_VM_OFFLINE=$${BORGKIT_VM_OFFLINE:-0} BORGKIT_VM_NSPAWN=$${BORGKIT_VM_NSPAWN:-0} BORGKIT_VM_BINARY=$(CURDIR)/$(BIN) BORGKIT_VM_BUILDS=$(CURDIR)/bin/builds BORGKIT_VM_DEBS=$(CURDIR)/bin/deb $(GO) test -count=1 -v -parallel 4 -timeout 60m ./testing/vm/

# bench is the comparison table (testing/bench): the real bin/borgkit
# against raw borg, borgmatic, ansible-playbook and cryptsetup on one
# seeded data set; then the engine's hot paths, go test -bench through
# benchstat (6 runs: benchstat wants 6 for a confidence interval). Root;
# installs the peers from Debian. BENCH_FLAGS=-readme=README.md also puts
# the table into the README.
BENCH_DEBS := borgmatic ansible-core time
BENCH_HOT  := ./provision/plan/ ./provision/host/ ./provision/config/ ./roles/jobs/status/ ./roles/recipe/
# vm-zfs proves the archive role on a real pool: the ZFS module is built
# natively in a chroot of the image once (about 16 min on 2 vCPUs) and
# cached beside it. make vm leaves it out unless BORGKIT_VM_ZFS=1.
vm-zfs: build vm-deps
	BORGKIT_VM=1 BORGKIT_VM_ZFS=1 BORGKIT_VM_BINARY=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -run TestVMArchiveZFS -timeout 120m ./testing/vm/

# vm-arm64 is the Raspberry Pi scenario on an arm64 guest (TCG emulates
# every instruction): the image's debootstrap runs under qemu-user, the
# pi boots and unlocks several times slower than an amd64 guest.
vm-arm64: deb vm-deps
	BORGKIT_VM=1 BORGKIT_VM_ARM64=1 BORGKIT_VM_BINARY=$(CURDIR)/$(BIN) BORGKIT_VM_BUILDS=$(CURDIR)/bin/builds BORGKIT_VM_DEBS=$(CURDIR)/bin/deb \
	  $(GO) test -count=1 -v -run TestVMPiArm64 -timeout 240m ./testing/vm/

# vm-adopt takes over the first seed's hand-built Pi with its real LUKS
# disk (issue 17): the hand-built system, adopt, provision, a reboot that
# unlocks through borgkit with the old keyfile, the first sync. About a
# quarter of an hour under TCG, so make vm leaves it out.
vm-adopt: build vm-deps
	BORGKIT_VM=1 BORGKIT_VM_ADOPT=1 BORGKIT_VM_BINARY=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -run TestVMAdoptPi -timeout 60m ./testing/vm/

# vm-offline is the restore from the recovery bundle alone (issue 16): the
# offline kit's Debian packages are fetched on this machine (a network is
# needed, as for the images), a lab guest writes the bundle with the kit
# onto a stick, and a bare Debian 12 guest with no network runs the
# runbook's own blocks off it twice (the Pi's disk with its LUKS header
# zeroed, then intact). It builds a third image and takes longer than make
# vm's share under TCG, so make vm leaves it out unless BORGKIT_VM_OFFLINE=1.
vm-offline: build vm-deps
	BORGKIT_VM=1 BORGKIT_VM_OFFLINE=1 BORGKIT_VM_BINARY=$(CURDIR)/$(BIN) BORGKIT_VM_BUILDS=$(CURDIR)/bin/builds \
	  $(GO) test -count=1 -v -run TestVMOfflineRunbook -timeout 90m ./testing/vm/

# vm-nspawn is a running systemd-nspawn container as a source on john-ai
# (issue 20): its own archive, the per-guest restore test and the
# dashboard's CONTAINER BACKUPS box from borgkit status. The image is the
# lab's with systemd-container, a layer of its own; make vm leaves it out
# unless BORGKIT_VM_NSPAWN=1.
vm-nspawn: build vm-deps
	BORGKIT_VM=1 BORGKIT_VM_NSPAWN=1 BORGKIT_VM_BINARY=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -run TestVMNspawnContainer -timeout 60m ./testing/vm/

# vagrant brings vagrant/Vagrantfile up end to end with Debian's vagrant and
# vagrant-libvirt (testing/vagrantlab/run): a box built from the VM lab's
# image (testing/vm/cmd/vagrantbox, cached beside it), libvirtd in private
# namespaces, qemu without KVM where there is none; john-ai provisions
# itself and the Pi, and `borgkit status` on john-ai must exit 0; then the
# machines are destroyed. Root. HEAVY_LOCK=FILE runs the boots under
# flock FILE, one heavy run at a time on a shared machine.
VAGRANT_DEBS := vagrant vagrant-libvirt libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients \
                qemu-system-x86 qemu-utils dnsmasq-base iptables rsync openssh-client debootstrap e2fsprogs
HEAVY_LOCK ?=
vagrant: build
	@missing=$$(for p in $(VAGRANT_DEBS); do dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null | grep -q '^ii' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@GO=$(GO) $(BUILD) -o bin/vagrantbox ./testing/vm/cmd/vagrantbox
	box=$$(bin/vagrantbox) && $(if $(HEAVY_LOCK),flock $(HEAVY_LOCK)) testing/vagrantlab/run "$$box"

bench: deps build
	@missing=$$(for p in $(BENCH_DEBS); do dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null | grep -q '^ii' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v benchstat >/dev/null || $(GO) install golang.org/x/perf/cmd/benchstat@latest
	$(GO) run ./testing/bench/cmd/bench -borgkit $(BIN) -o bin/bench.md $(BENCH_FLAGS)
	@echo "=== go test -bench: the engine's hot paths (6 runs each)"
	@set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -benchtime 0.5s -count 6 $(BENCH_HOT) | tee bin/bench-go.txt | grep -v '^Benchmark'
	benchstat bin/bench-go.txt

# bench-go runs every go test benchmark once (5 iterations each), the
# slow real-tool ones too.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 5x ./...

# fuzz runs the config decoder on generated input with its size, depth and
# alias limits; each input must be refused or accepted within 10s and in
# proportion to its size. FUZZTIME=10m for a longer run.
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./provision/config/ -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)

clean:
	rm -rf bin man completion
