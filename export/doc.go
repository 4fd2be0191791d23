// Package export declares the result schema and writes and reads results as
// Parquet, Arrow IPC, CSV and NDJSON.
package export
