// Independent reader for reach's Parquet output: DuckDB reads a file (or a
// partitioned directory) and prints, as JSON, the row count, the column
// types and the Parquet min/max statistics of ip_u32 and port.
// usage: node duckdb_check.mjs PATH_GLOB
import { DuckDBInstance } from '@duckdb/node-api';

const path = process.argv[2];
const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
const q = async (sql) => (await con.runAndReadAll(sql)).getRowObjectsJson();
const src = `read_parquet('${path}', hive_partitioning = ${path.includes('date=') ? 'true' : 'false'})`;
const count = await q(`SELECT count(*) AS n, min(ip_u32) AS min_ip, max(ip_u32) AS max_ip, min(port) AS min_port, max(port) AS max_port FROM ${src}`);
const types = await q(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${src})`);
const stats = await q(`SELECT path_in_schema AS col, CAST(min(CAST(stats_min_value AS UBIGINT)) AS VARCHAR) AS smin, CAST(max(CAST(stats_max_value AS UBIGINT)) AS VARCHAR) AS smax FROM parquet_metadata('${path}') WHERE path_in_schema IN ('ip_u32','port') GROUP BY 1 ORDER BY 1`);
console.log(JSON.stringify({ count: count[0], types, stats }));
