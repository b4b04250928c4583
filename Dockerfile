# whatsgate-exporter container image.
#
#   docker build -t whatsgate-exporter .
#   docker run --rm -p 9877:9877 whatsgate-exporter --demo
#   docker run -d -p 9877:9877 -e WHATSGATE_API_KEY=... \
#     -v "$PWD/config.yaml:/etc/whatsgate-exporter/config.yaml:ro" whatsgate-exporter
#
# The config file is read from /etc/whatsgate-exporter/config.yaml (mount it
# there). The API key comes from the environment (api_key: ${WHATSGATE_API_KEY}
# in the config) or from a mounted secret file (api_key_file:
# /run/secrets/whatsgate_api_key), never from the image.

ARG PYTHON_IMAGE=python:3.11-slim

# Build stage: the package and its dependencies in a virtual environment without
# pip of its own, which the final stage copies alone (no build tools, no pip
# cache, no source tree).
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter/ exporter/
RUN python -m venv --without-pip /opt/venv \
 && pip --python /opt/venv/bin/python install . \
 && /opt/venv/bin/whatsgate-exporter --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="whatsgate-exporter" \
      org.opencontainers.image.description="Prometheus exporter for WhatsApp accounts on the WhatsGate gateway" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 whatsgate \
 && useradd --system --uid 10001 --gid whatsgate --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin whatsgate \
 && mkdir -p /etc/whatsgate-exporter /var/lib/whatsgate-exporter \
 && chown 10001:10001 /var/lib/whatsgate-exporter
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
# state_file: /var/lib/whatsgate-exporter/state.json keeps open waits across restarts.
VOLUME ["/var/lib/whatsgate-exporter"]
EXPOSE 9877
# With --web.listen-address or --web.config.file (TLS, basic auth), give the same flags to the
# check: `--health-cmd 'whatsgate-exporter --web.config.file=/etc/whatsgate-exporter/web.yml healthcheck'`
# (or healthcheck: test: in compose). A 401 counts as healthy: the server answered.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["whatsgate-exporter", "healthcheck"]
ENTRYPOINT ["whatsgate-exporter"]
CMD ["--config.file=/etc/whatsgate-exporter/config.yaml"]
