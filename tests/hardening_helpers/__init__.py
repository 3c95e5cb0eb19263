"""Shared harnesses for the hardening tests (tests/test_hardening_*.py) and the
benchmarks/ scripts that run them at full size: fuzz generators and targets,
fault injection, child-process programs."""
