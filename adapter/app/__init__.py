"""The wiring: builds jobs, the service and its servers from the settings; the only floor that
knows every part (docs/architecture.md). Engines and parts below it are handed what they need."""
