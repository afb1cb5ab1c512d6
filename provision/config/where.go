package config

import (
	"fmt"
	"reflect"
)

// Where is "FILE:LINE" for a YAML path ("$.alerts.smtp.password_file"), for
// a message that sends the user to the line to edit; the nearest written
// ancestor's line when the path itself is not written, FILE alone when
// no line is known (a Config built in code).
func (c *Config) Where(path string) string {
	file := c.File
	if file == "" {
		file = "the config"
	}
	if pos := c.src.lookup(path); pos.line > 0 {
		return fmt.Sprintf("%s:%d", file, pos.line)
	}
	return file
}

// AlertsPath is the YAML path of the alerts field (its yaml name, "smtp")
// whose value host h uses: the host's own alerts when it sets the field,
// else the site's.
func (c *Config) AlertsPath(h *Host, field string) string {
	for i := range c.Hosts {
		if c.Hosts[i].Name != h.Name || h.Alerts == nil {
			continue
		}
		v := reflect.ValueOf(*h.Alerts)
		t := v.Type()
		for j := range t.NumField() {
			if yamlName(t.Field(j)) == field && !v.Field(j).IsZero() {
				return fmt.Sprintf("$.hosts[%d].alerts.%s", i, field)
			}
		}
	}
	return "$.alerts." + field
}

// Field is a YAML path as the user reads it ("alerts.smtp.password_file").
func Field(path string) string { return displayPath(path) }

// Closest is the candidate within two edits of name, "" if none is: the
// "did you mean" of config errors and of the command line.
func Closest(name string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}
