// Package bpf holds reach's XDP reply matcher (xdp.c), its bpf2go output,
// committed so that go build needs no clang, and a typed loader.
package bpf

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-14 -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -type event -type counter -target bpfel reachXDP xdp.c
