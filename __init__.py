"""ComfyUI entry point of the Wan image pack. The nodes are registered in nodes/ (see the README)."""
