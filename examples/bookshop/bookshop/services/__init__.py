"""Service layer: functions that take a Session and return plain data."""
