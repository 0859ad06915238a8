# syntax=docker/dockerfile:1
# pacs, a DICOMweb archive, as a small non-root image.
#
#   docker build -t pacs --build-arg SOURCE=https://... --build-arg REVISION=$(git rev-parse HEAD) .
#
# Configuration: every `pacs serve` option is also a PACS_<OPTION> variable (PACS_WORKERS=4,
# PACS_ADMIN=user:alice@example.com) or a key of a TOML file, mounted at /etc/pacs/pacs.toml:
#
#   docker run -v ./pacs.toml:/etc/pacs/pacs.toml:ro pacs serve --config /etc/pacs/pacs.toml
#
# (or -e PACS_CONFIG=/etc/pacs/pacs.toml). Flags win over variables, variables over the file,
# so host, port and data, which the image sets as PACS_HOST, PACS_PORT and PACS_DATA below, are
# changed with -e, not in the file; `serve --print-config` prints what results. The health
# check reads PACS_PORT: do not move the port with a flag.
#
# The image listens on 0.0.0.0, so pacs refuses to start without authentication. Real use:
# bearer tokens (a JSON file of token -> identity) and who administers, e.g.
#
#   docker run -p 8080:8080 -v pacs-data:/data -v ./tokens.json:/etc/pacs/tokens.json:ro \
#       -e PACS_AUTH_TOKENS=/etc/pacs/tokens.json -e PACS_ADMIN=user:alice@example.com pacs
#
# or OIDC (PACS_OIDC_ISSUER, PACS_OIDC_AUDIENCE, PACS_OIDC_JWKS). A local trial only, where
# anyone who reaches the port may read, store and delete everything:
#
#   docker run -p 8080:8080 -e PACS_ALLOW_UNAUTHENTICATED=true pacs
#
# The archive is kept in the volume /data, owned by uid:gid 10001:10001 (a named volume takes
# that over; a bind-mounted directory needs `chown 10001:10001 DIR`). Workers default to one
# per core the container may use (its --cpus limit included); PACS_WORKERS sets them.
# tests/test_dockerfile.py lints this file with hadolint and runs its steps without Docker.

ARG PYTHON_VERSION=3.12

# Builder: a wheel of pacs and of each dependency. Every dependency ships manylinux wheels, so
# this needs no compiler; should one ever need building, its compiler goes here, not below.
FROM python:${PYTHON_VERSION}-slim-trixie AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pacs ./pacs
COPY storage ./storage
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --disable-pip-version-check --wheel-dir /wheels .

# Runtime: the wheels installed from a bind mount, so they never become a layer of the image.
# manylinux wheels carry their own libraries: no Debian package is added.
FROM python:${PYTHON_VERSION}-slim-trixie
# pacs.__version__ (the test holds them equal); SOURCE and REVISION are given at build time
ARG VERSION=0.1.0
ARG SOURCE=""
ARG REVISION=""
LABEL org.opencontainers.image.title="pacs" \
      org.opencontainers.image.description="A DICOMweb archive (Store, Search, Retrieve, Delete) that serves the Cloud Healthcare API's paths" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}"

RUN groupadd --system --gid 10001 pacs \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /data \
       --shell /usr/sbin/nologin pacs \
    && mkdir /data \
    && chown 10001:10001 /data

RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
        --no-index --find-links=/wheels "pacs==${VERSION}"

ENV PYTHONUNBUFFERED=1 \
    PACS_HOST=0.0.0.0 \
    PACS_PORT=8080 \
    PACS_DATA=/data

VOLUME ["/data"]
USER 10001:10001
WORKDIR /data
EXPOSE 8080

# Python's standard library only (the image has no curl): 200 from /readyz while the index and
# the blob store can be reached.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PACS_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["pacs"]
CMD ["serve"]
