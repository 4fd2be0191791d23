// Package bpf holds the XDP reply matcher (xdp.c), its bpf2go output and a
// typed loader.
package bpf
