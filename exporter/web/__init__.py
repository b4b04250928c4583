"""Where HTTP is served: /metrics, the status page, health and readiness."""
