"""Named properties of the TDX host initialisation: what must always be true of `spec`."""
