"""What people and machines read: TDMR and verify reports, traces, state graphs."""
