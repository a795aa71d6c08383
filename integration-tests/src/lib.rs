//! Test harness for Sluice against a real broker; see `integration-tests/README.md`.
