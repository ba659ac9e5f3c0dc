"""The searches: the breadth-first explorer, the Z3 layout engines, map synthesis and search."""
