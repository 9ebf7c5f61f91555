"""Figures and tables from brainsleep results (python -m analysis RESULTS_DIR)."""
