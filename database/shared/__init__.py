"""The shared database: the job ledger every component reads and writes, and result files."""
