"""The three databases (client, admin, shared): models, engines, repositories and migrations."""
