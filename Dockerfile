# One realtime node. docker-compose.yml runs two of them behind nginx; the database, Redis and
# the master key come from the environment (see the README, "Several nodes with Docker Compose").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A plain (not editable) install: the wheel carries the migrations and the browser client.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sql ./sql
COPY static ./static
COPY realtime ./realtime
RUN pip install . && rm -rf /src

# Never root; the embedded PostgreSQL (used only without REALTIME_DATABASE_URL) refuses root too.
RUN useradd --system --create-home --home-dir /home/realtime --uid 10001 realtime
USER realtime
WORKDIR /home/realtime

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["realtime", "serve", "--host", "0.0.0.0", "--port", "8000"]
