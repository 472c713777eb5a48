"""Performance models: FLOPs and bytes per operator, memory fit, communication, serving dynamics."""
