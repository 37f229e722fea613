# The gateway in a container: `docker compose up` (see docker-compose.yml).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin taxiway

FROM debian:bookworm-slim
# CA certificates: pushes to HTTPS subscribers verify their servers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data taxiway \
    && mkdir /data && chown taxiway /data
COPY --from=build /src/target/release/taxiway /usr/local/bin/taxiway
USER taxiway
VOLUME /data
EXPOSE 9000
ENTRYPOINT ["taxiway"]
# The default scenario, reachable from the host; with a configuration file,
# mount it and pass `serve --config FILE` instead.
CMD ["serve", "--listen", "0.0.0.0:9000", "--data-dir", "/data", "--public-url", "http://localhost:9000"]
