module backlog-gitops/tools/exporter

go 1.22

require github.com/nats-io/prometheus-nats-exporter v0.12.0
