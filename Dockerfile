# g3n on Debian 12: the same setup script as a workstation, a Release build,
# and the daemons on PATH. Every service of compose.yaml runs this image.
FROM debian:12 AS build
WORKDIR /src
COPY scripts/setup.sh scripts/setup.sh
RUN bash scripts/setup.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN rm -rf build && bash scripts/build.sh release

FROM debian:12
COPY --from=build /src/scripts/setup.sh /opt/g3n/scripts/setup.sh
RUN bash /opt/g3n/scripts/setup.sh && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/release/orchestrator/g3n /src/build/release/g3n-* /usr/local/bin/
COPY --from=build /src/scripts/demo-config.json /opt/g3n/scripts/demo-config.json
COPY --from=build /src/tests/fixtures/tokenizer/tokenizer.json /opt/g3n/tests/fixtures/tokenizer/tokenizer.json
COPY --from=build /src/assets /opt/g3n/assets
ENV G3N_HOME=/opt/g3n
EXPOSE 5555 5556
USER nobody
CMD ["g3n", "run", "--demo"]
