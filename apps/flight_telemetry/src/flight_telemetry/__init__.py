"""flight_telemetry: synthetic per-aircraft telemetry files aggregated with pandas (or cuDF)."""
