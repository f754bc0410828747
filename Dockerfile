# One Raft3D node per container; see compose.yaml and README.rst, "Running on several hosts".
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY setup.cfg pyproject.toml README.rst ./
COPY src ./src
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin raft3d \
    && mkdir -p /data /etc/raft3d \
    && chown raft3d:raft3d /data

USER raft3d
# The node's log, snapshots and vote: mount a named volume here.
VOLUME /data
EXPOSE 8080 9080
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-m", "raft3d.healthcheck"]
ENTRYPOINT ["raft3d"]
CMD ["serve", "--config", "/etc/raft3d/node.toml"]
