"""The admin database: admin users, node registry, run-time settings, audit log, performance samples."""
