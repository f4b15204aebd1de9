"""comfyui package."""
