"""The client database: client applications, their jobs, uploads and access log."""
