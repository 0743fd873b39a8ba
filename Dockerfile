# The ledger's image for the production-shaped stack (docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ledger ledger
COPY wire wire
COPY infra infra
COPY commands commands
COPY outbox outbox
COPY projections projections
COPY runtime runtime
COPY local local
COPY tools tools
COPY schemas schemas
# Editable, so the codec finds schemas/ beside the packages.
RUN pip install --no-cache-dir -e .
USER nobody
ENTRYPOINT ["ledger"]
CMD ["run"]
