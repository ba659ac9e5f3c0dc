"""What the checker reads: memory maps and boot logs, and the flow's platform configurations."""
