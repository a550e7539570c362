"""Pure decisions without I/O: validation, matching, channel logs, acknowledgements."""
