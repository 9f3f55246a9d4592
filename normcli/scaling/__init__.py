"""Scaling statistics: the methods, the exact fit engine, merging, the stats file and applying it."""
