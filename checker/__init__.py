"""Engines, readers, reports and the command line of tdx-host-checker."""
