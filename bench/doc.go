// Package bench holds reach's benchmark tooling: the simulated network
// (bench/testnet) and the XDP responder that answers SYNs by a known ground
// truth (bench/responder). See bench/README.md for the latest figures.
package bench
