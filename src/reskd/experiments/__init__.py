"""Experiments built from runs: the demo, the studies and sweeps (the layer above `reskd.runs`)."""
