FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY medai_site medai_site
COPY patients patients
COPY visits visits
COPY predictions predictions
# Pass --build-arg PIP_EXTRA_INDEX_URL=<a CPU wheel index> to keep the image free of CUDA.
ARG PIP_EXTRA_INDEX_URL
RUN pip install --no-cache-dir torch==2.13.0 \
    && pip install --no-cache-dir .
COPY . .
ENV MEDAI_PROFILE=production
RUN DJANGO_SECRET_KEY=build FIELD_ENCRYPTION_KEY=$(python -c "from cryptography.fernet import Fernet;print(Fernet.generate_key().decode())") BLIND_INDEX_KEY=00000000000000000000000000000000 AUDIT_CHAIN_KEY=build:0000000000000000000000000000000000000000000000000000000000000000 MEDAI_AUDIT_ANCHOR_DIR=/tmp/anchors DATABASE_URL=sqlite:////tmp/x CELERY_BROKER_URL=memory:// python manage.py collectstatic --no-input
USER nobody
