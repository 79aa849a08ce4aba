# syntax=docker/dockerfile:1
# The codebuild-operator image: a static-ish Rust binary on distroless (glibc, CA
# certificates, nothing else: no shell, no package manager), running as UID 65532.
#
#   docker build -t codebuild-operator:dev .
#   buildah bud -t codebuild-operator:dev .        # daemonless
#
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 (the builder compiles
# natively on each platform under emulation; aws-lc-rs builds with the C compiler the Rust
# image ships).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# The whole workspace (sim/ is a member, so cargo needs its manifest); .dockerignore keeps
# target/ and .git out of the context.
COPY . .
# Cache mounts keep the registry and target/ between builds; the binary is copied out of
# the cache so the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p codebuild-operator \
 && install -D -m 0755 target/release/codebuild-operator /out/codebuild-operator

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="codebuild-operator" \
      org.opencontainers.image.description="Run AWS CodeBuild builds as Kubernetes CodeBuildRun objects" \
      org.opencontainers.image.source="https://github.com/codebuild-operator/codebuild-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/codebuild-operator /codebuild-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/codebuild-operator"]
CMD ["run"]
