"""Alert domain: lifecycle, routing, escalation, cooldown. No I/O, no adapters."""
