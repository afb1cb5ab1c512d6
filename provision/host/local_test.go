package host_test

import (
	"testing"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/host/hosttest"
)

func TestLocal(t *testing.T) {
	hosttest.Run(t, func(t *testing.T) (host.Host, string) {
		h := host.NewLocal("local")
		t.Cleanup(func() { h.Close() })
		return h, t.TempDir()
	})
}

func TestLocalIsLive(t *testing.T) {
	h := host.NewLocal("local")
	if !h.Live() || h.Path("/etc/fstab") != "/etc/fstab" || h.Name() != "local" {
		t.Errorf("Live %v Path %q Name %q", h.Live(), h.Path("/etc/fstab"), h.Name())
	}
}
