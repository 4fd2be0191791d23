package testnet

import _ "embed" // DemoPolicy

// DemoPolicy is the intended exposure of the real servers of Servers (a
// policy file for exposure.ParsePolicy), which `reach demo` reviews its
// banner scan against. Embedded so the demo runs from any directory.
//
//go:embed demo-policy.yaml
var DemoPolicy string
