"""Test-wide settings: hypothesis never fails a test for being slow on a loaded CI machine
(speed is measured in benchmarks/, not asserted in tests)."""

from hypothesis import settings

settings.register_profile("tdx-checker", deadline=None)
settings.load_profile("tdx-checker")
