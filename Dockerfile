# Switchboard in a container (docs/OPERATIONS.md): built from source in a
# Rust image, run as a non-root user from an image that holds the binary
# alone (with the C library it links, distroless's `cc` base).
#   docker build -t switchboard .
#   docker run -p 3001:3001 switchboard
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The default policy is compiled to a WebAssembly component at build time.
RUN rustup target add wasm32-wasip2
COPY . .
RUN cargo build --release --locked -p switchboard \
    && cp target/release/switchboard /switchboard

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /switchboard /switchboard
USER nonroot:nonroot
EXPOSE 3001
ENTRYPOINT ["/switchboard"]
CMD ["--listen", "0.0.0.0:3001"]
