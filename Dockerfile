# The lenet5 service: FastAPI on onnxruntime with the shipped model, no torch, no compilers.
#
#   docker build -t lenet5 .
#   docker run -p 8000:8000 -e LENET5_WORKERS=2 lenet5

# Builder: a venv with the runtime dependencies and the package; only the venv moves on.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, read from pyproject.toml, so a new model or code change reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && /opt/venv/bin/pip install -r requirements.txt
COPY README.md ./
COPY app app
COPY training training
COPY model model
RUN /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/pip uninstall -y pip setuptools

FROM python:3.11-slim
# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it (deploy/k8s runs as 10001).
RUN groupadd --system --gid 10001 lenet5 \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin lenet5
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LENET5_WORKERS=1
USER 10001:10001
EXPOSE 8000
# slim has no curl; urlopen raises on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
CMD ["sh", "-c", "exec lenet5 serve --host 0.0.0.0 --port 8000 --workers \"$LENET5_WORKERS\""]
