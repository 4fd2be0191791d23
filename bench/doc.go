// Package bench is the throughput and accuracy harness that compares reach
// with ZMap and masscan on a simulated network.
package bench
