# otm daemon and CLI image: ghcr.io/otm-project/otm:<version>.
#   docker build -t ghcr.io/otm-project/otm:0.1.0 .
# Runs as uid 10001 on a read-only root filesystem (the Deployment mounts /tmp), so
# nothing here may expect to write outside /tmp at run time.
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# README.md* : the glob keeps the build working before the README exists.
COPY pyproject.toml constraints.txt README.md* ./
COPY daemon ./daemon
COPY otm ./otm
# The runtime only (no extras: no TUI, no test tools), at the versions the tests ran with:
# constraints.txt pins every runtime dependency (scripts/constraints.py).
RUN pip install --prefix=/install --constraint constraints.txt .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /install /usr/local
RUN groupadd --gid 10001 otm \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin otm \
 && python -c "import daemon.kube.names, otm" \
 && ! python -c "import textual" 2>/dev/null
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 8081
CMD ["otm", "daemon"]
