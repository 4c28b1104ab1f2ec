# syntax=docker/dockerfile:1
# The Lanyard image: web (gunicorn), Celery worker and beat all run from it (docker-compose.yml).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 lanyard \
    && useradd --system --uid 10001 --gid lanyard --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin lanyard

WORKDIR /app

# Dependencies first, so code changes do not reinstall them. Runtime dependencies only: graphsim's
# and the development tools are in the development lock, which the image never installs.
COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY . .

# Static files are collected into the image (whitenoise serves them). The code stays owned by
# root and read-only for the app; only var/ (runtime state, beat's schedule) is writable.
RUN python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p var/beat \
    && chown -R lanyard:lanyard var

USER lanyard
EXPOSE 8000
CMD ["gunicorn", "portal.wsgi", "--bind=0.0.0.0:8000", "--access-logfile=-", "--forwarded-allow-ips=*"]
