"""Distribution across nodes: failover, hangs, worker crashes, priorities, drain, submit-time placement."""
