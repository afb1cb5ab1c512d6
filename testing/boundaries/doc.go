// Package boundaries holds the project's import rules as data and a test
// that fails when a package breaks one: provisioning and the runtime jobs
// are siblings, the engine is the ground floor, the recovery tools stand
// on it alone.
package boundaries
