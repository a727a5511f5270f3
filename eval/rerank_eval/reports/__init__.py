"""Reports: results.json, per-query CSV, summary tables."""
