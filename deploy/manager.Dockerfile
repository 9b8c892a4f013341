# LaunchDB PostgREST manager, reaching Docker only through the sockpin proxy.
#
# Build with `make images` (after `make build`): static binary, FROM scratch, no registry.
# Runs as UID/GID 1001 like the Node manager it replaces. It writes only to
# /etc/postgrest/projects (a volume), so it runs with a read-only root filesystem, all
# capabilities dropped and no-new-privileges. No CA certificates: the platform database is
# reached without TLS inside the compose network and the proxy over plain HTTP.
FROM scratch
COPY bin/manager /manager
# An empty directory owned by 1001: Docker copies this ownership into a fresh named volume
# mounted here, so the manager can write configs on a first install (spec finding 9).
COPY --chown=1001:1001 deploy/config-dir/ /etc/postgrest/projects/
USER 1001:1001
EXPOSE 9000
# `manager health` asks GET /health on PORT: database, Docker (through the proxy) and a
# writable config directory. Same timings as LaunchDB's compose healthcheck.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 CMD ["/manager", "health"]
ENTRYPOINT ["/manager"]
