package config

import (
	"bytes"

	"github.com/borgkit/borgkit/provision/layout"
)

// installedMarker is the first line of the config as provisioning installs
// it: the file is borgkit's, so a foreign file in its place is a conflict.
var installedMarker = "# " + layout.Marker + ": the site config, installed by borgkit provision from the copy it was run with; provision again to change it.\n"

// Installed is data as provisioning installs it on a host: the marker line,
// then the config without a byte-order mark or a marker line of its own
// (the copy provisioned from may be an installed one).
func Installed(data []byte) []byte {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	data = bytes.TrimPrefix(data, []byte(installedMarker))
	return append([]byte(installedMarker), data...)
}
