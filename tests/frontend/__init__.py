"""Tests of the browser front ends and the server that hosts them."""
