// Pins prometheus-nats-exporter for the end-to-end test. `go install module@version` cannot be used: it asks the
// module proxy for the version list (deprecation check), which the proxy here refuses for this module.
//go:build tools

package tools

import _ "github.com/nats-io/prometheus-nats-exporter"
