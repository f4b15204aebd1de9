"""ComfyUI Web Service: shared settings, the operator's config, the CLI and the simulated node."""
