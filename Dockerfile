# syntax=docker/dockerfile:1
# fxcrm: one image for both processes.
#   web:     docker run -p 8000:8000 --env-file fxcrm.env IMAGE                 (the default CMD)
#   worker:  docker run --env-file fxcrm.env IMAGE fxcrm worker
#   migrate: docker run --rm --env-file fxcrm.env IMAGE fxcrm migrate            (once per deploy)
# fxcrm.env holds at least DATABASE_URL, SECRET_KEY, SMTP_URL and BASE_URL (see README.md).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: a venv with every dependency (wheels; compiled here if a platform lacks one) ---
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip setuptools wheel
WORKDIR /app
# Dependencies first, so editing the code does not rebuild this layer.
COPY pyproject.toml ./
RUN mkdir app && touch app/__init__.py \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/pip uninstall -y fxcrm \
 && rm -rf app build *.egg-info
COPY app ./app
# Editable on purpose: templates/, static/ and migrations/ are found next to app/ in /app.
RUN /opt/venv/bin/pip install --no-deps -e . \
 && /opt/venv/bin/python -m compileall -q app

# --- runtime: no compiler, no build tools, not root ---
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    FXCRM_VAR_DIR=/var/lib/fxcrm
RUN groupadd --system --gid 10001 fxcrm \
 && useradd --system --uid 10001 --gid fxcrm --home-dir /var/lib/fxcrm --create-home --shell /usr/sbin/nologin fxcrm
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
COPY templates /app/templates
COPY static /app/static
COPY migrations /app/migrations
WORKDIR /app
USER fxcrm
EXPOSE 8000
# Liveness: GET /healthz. Readiness: GET /readyz (database, migrations, a worker heartbeat).
CMD ["fxcrm", "web", "--host", "0.0.0.0"]
# The job worker is the same image with a second command:
#   CMD ["fxcrm", "worker"]
