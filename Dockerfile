# Build a static binary, then copy it into a minimal image that runs as a
# non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/meridian ./cmd/meridian

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/meridian /usr/bin/meridian
USER 65532:65532
WORKDIR /data
VOLUME /data
EXPOSE 8080 9095 7946 2003
ENTRYPOINT ["/usr/bin/meridian"]
CMD ["-target=all", "-common.data-dir=/data"]
