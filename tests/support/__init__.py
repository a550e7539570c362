"""Helpers shared by the test suites: real servers on loopback, settings for fast timers."""
