"""Measuring a live OpenAI-compatible endpoint with an established load generator (see loadgen.py)."""
