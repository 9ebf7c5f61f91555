"""Neuron and plasticity models as data (Brian2 equation strings and named constants)."""
