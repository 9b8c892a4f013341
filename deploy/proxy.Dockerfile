# sockpin proxy: the only client of the Docker socket.
#
# Build with `make images` (after `make build`): the binary is static (CGO_ENABLED=0), so the
# image is FROM scratch and needs no registry. It holds the binary and the repository's
# policy.yaml as a default; mount your own at /etc/sockpin/policy.yaml (read-only).
#
# It runs as UID/GID 65532, never as root. To reach /var/run/docker.sock it needs the
# socket's group: `group_add: ["<gid of the socket>"]` in compose, `--group-add` with docker
# run. It writes nothing, so it runs with a read-only root filesystem, all capabilities
# dropped and no-new-privileges. No CA certificates: it speaks plain HTTP to the daemon's
# unix socket and to its clients.
FROM scratch
COPY bin/proxy /proxy
COPY policy.yaml /etc/sockpin/policy.yaml
ENV SOCKPIN_POLICY=/etc/sockpin/policy.yaml \
    SOCKPIN_LISTEN=tcp://0.0.0.0:2375 \
    SOCKPIN_METRICS_LISTEN=tcp://0.0.0.0:9102 \
    SOCKPIN_UPSTREAM=unix:///var/run/docker.sock
USER 65532:65532
EXPOSE 2375 9102
# `proxy health` asks the metrics listener's /healthz: no shell or curl needed.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 CMD ["/proxy", "health"]
ENTRYPOINT ["/proxy"]
