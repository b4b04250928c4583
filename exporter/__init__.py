"""whatsgate-exporter: Prometheus exporter and alerting agent for WhatsGate accounts."""

__version__ = "0.1.0"
