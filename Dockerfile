# trialwatch daemon image: build wheels in one stage, run as a non-root user in the next.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[postgres]'

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 trialwatch
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY config ./config
COPY seeds ./seeds
# at start: `trialwatch init` and `trialwatch seeds load /app/seeds`, then the command
COPY deploy/docker-entrypoint.sh /usr/local/bin/trialwatch-entrypoint
RUN chmod 0755 /usr/local/bin/trialwatch-entrypoint \
    && mkdir -p /app/var && chown trialwatch:trialwatch /app/var
USER trialwatch
# the SQLite store (default sqlite:///var/trialwatch.db) lives here
VOLUME ["/app/var"]
# health on every interface of the container, so that the orchestrator (and a published
# port) reaches /healthz, /readyz and /metrics; the database password comes from the
# environment: TRIALWATCH_DATABASE_URL, or PGPASSWORD beside a URL without one
ENV TRIALWATCH_HEALTH_PORT=8080 \
    TRIALWATCH_HEALTH_HOST=0.0.0.0
EXPOSE 8080
# liveness: /healthz (a registry that is down is not a reason to restart; /readyz says it)
HEALTHCHECK --interval=60s --timeout=5s --start-period=60s --retries=3 \
  CMD ["trialwatch", "healthcheck", "--port", "8080"]
ENTRYPOINT ["trialwatch-entrypoint"]
CMD ["trialwatch", "run"]
