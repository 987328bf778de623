"""ETL jobs: read sources, check them against the standards, normalise, load the store."""
