# llm-incident service image: `docker build -t llm-incident . && docker run -p 8000:8000 llm-incident`
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LLM_INCIDENT_DATABASE_URL=sqlite:////data/llm_incident.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY client ./client
RUN pip install '.[postgres]' \
    && useradd --system --uid 10001 --home-dir /app llm \
    && mkdir -p /data && chown llm /data

USER llm
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"

CMD ["llm-incident", "serve", "--host", "0.0.0.0", "--port", "8000"]
