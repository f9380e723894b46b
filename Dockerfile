# The lenet5 service: FastAPI on onnxruntime with the shipped model, no torch, no compilers.
#
#   docker build -t lenet5 .
#   docker run -p 8000:8000 --memory 512m lenet5

# The runtime dependencies, read from pyproject.toml, in a venv without pip. Its layer changes
# only with the dependencies.
FROM python:3.11-slim AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml ./
RUN python -m venv --without-pip /opt/venv \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip --python /opt/venv/bin/python install -r requirements.txt

# The package and its model, apart from the venv: a new model or code change is a layer of
# about a megabyte to build, push and pull, not the whole venv again.
FROM deps AS package
COPY README.md ./
COPY app app
COPY training training
COPY model model
RUN pip --python /opt/venv/bin/python install --no-deps --target /opt/lenet5 .

FROM python:3.11-slim
# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it (deploy/k8s runs as 10001).
RUN groupadd --system --gid 10001 lenet5 \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin lenet5 \
 && mkdir /data && chown 10001:10001 /data
COPY --from=deps /opt/venv /opt/venv
COPY --from=package /opt/lenet5 /opt/lenet5
# onnxruntime's own telemetry would report from every pod (and warns when it cannot store its
# device id: this user has no home and the Deployment's root is read-only).
ENV PATH=/opt/lenet5/bin:/opt/venv/bin:$PATH PYTHONPATH=/opt/lenet5 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LENET5_WORKERS=1 ORT_DISABLE_TELEMETRY=1 \
    LENET5_FEEDBACK_DB=/data
# The corrections' SQLite store (feedback.sqlite3 and its WAL): a volume, so it outlives the
# container; LENET5_FEEDBACK_URL=postgresql://… keeps them in PostgreSQL instead.
VOLUME /data
USER 10001:10001
EXPOSE 8000
# slim has no curl; urlopen raises on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
CMD ["sh", "-c", "exec lenet5 serve --host 0.0.0.0 --port 8000 --workers \"$LENET5_WORKERS\""]
