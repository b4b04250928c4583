"""The status page at ``/``: a snapshot rendered for people, as metrics/ renders it for Prometheus."""
