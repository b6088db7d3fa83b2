"""Attribution: pure functions that decide which customers an interaction belongs to."""
