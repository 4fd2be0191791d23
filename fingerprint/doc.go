// Package fingerprint grabs banners from open ports and identifies the
// service, product and version behind them.
package fingerprint
