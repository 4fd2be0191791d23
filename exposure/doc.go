// Package exposure classifies exposures, compares them with the intended
// exposure a team declares, and reports what changed between scans.
package exposure
