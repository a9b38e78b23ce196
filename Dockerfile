# tally's image: every role (`init`, `aggregator`, `sink`, `api`, …) runs from it; the compose
# service's command picks the role:  docker run tally:local aggregator
#
#   docker build -t tally:local .
#
# Stages: `manifests` picks the package files out of the context (for layer caching); `build`
# has the compilers node-rdkafka's native addon (librdkafka from source) and the web bundle
# need; `runtime` has only node, the shared libraries the addon links to, and the app with its
# production dependencies. Base: node:20-bookworm-slim (the same Debian release as the servers
# the project's tests run on).

ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------
# Every package.json and package-lock.json of the context, and nothing else, so that the
# dependency layer below depends only on them: changing the code does not rebuild node-rdkafka
# (two minutes), and a later npm workspace (e.g. web/) is installed by the same `npm ci`.
# (A stage instead of `RUN --mount`, so the legacy builder that docker-compose v1 may use
# builds it too; COPY --from is cached by content.)
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN mkdir /manifests \
 && find . -name node_modules -prune -o \( -name package.json -o -name package-lock.json \) -type f \
      -exec cp --parents -t /manifests {} +

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build

# python3/make/g++ for node-gyp; the -dev packages are what librdkafka's configure finds and
# links to (TLS and SASL/SCRAM via OpenSSL, gzip via zlib, zstd compression). Not pinned:
# Debian stable's versions only change for security fixes, and old ones leave the mirrors.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ libssl-dev zlib1g-dev libzstd-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Compile against the headers that ship with this node instead of downloading them.
ENV npm_config_nodedir=/usr/local

WORKDIR /app
COPY --from=manifests /manifests/ ./
RUN npm ci --no-audit --no-fund

COPY . .

# The web bundle, once the project has a build script for it (a no-op until then).
RUN npm run build --if-present

# What the runtime needs, and nothing else: production dependencies, the server's TypeScript
# (run by tsx), the SQL migrations, the CLI wrapper, and the built web bundle if there is one.
RUN npm prune --omit=dev --no-audit --no-fund \
 && node -e "const k = require('node-rdkafka'); console.log('librdkafka', k.librdkafkaVersion, k.features.join(','))" \
 && mkdir -p /out \
 && cp -a package.json package-lock.json node_modules server sql bin /out/ \
 && if [ -d web/dist ]; then mkdir -p /out/web && cp -a web/dist /out/web/; fi

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime

# The shared libraries librdkafka was linked to in the build stage, and CA certificates for
# TLS to a managed Kafka or ClickHouse.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 zlib1g libzstd1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /out/ /app/

# Fail the build here, not at the first start, if the addon cannot load its libraries.
RUN node -e "require('node-rdkafka')"

# The node image's unprivileged user `node`, by number so that a runtime can verify it is not
# root (Kubernetes runAsNonRoot). The app files stay owned by root (read-only to it); tally
# writes nothing in /app when KAFKA_BROKERS and CLICKHOUSE_URL are set, and tsx caches in /tmp.
USER 1000:1000

# api: REST, dashboard, /healthz and /metrics (TALLY_HTTP_PORT); aggregator and sink: /metrics
# (TALLY_METRICS_PORT, as docker-compose.yml sets it). TALLY_HTTP_HOST must be 0.0.0.0 in a
# container.
EXPOSE 8080 9464

# The `tally` CLI. `--import tsx` runs the TypeScript directly (tsx is a runtime dependency).
ENTRYPOINT ["node", "--import", "tsx", "server/src/cli.ts"]
CMD ["--help"]
