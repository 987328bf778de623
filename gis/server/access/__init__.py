"""Graded access: keys, per-grade views, rate limits, metering, charging and the audit log."""
