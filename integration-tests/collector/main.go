// Command otelcol-sluice is a minimal OpenTelemetry Collector distribution for Sluice's
// integration tests: the OTLP receiver (gRPC and HTTP), the batch processor, and the
// debug, file and Prometheus remote-write exporters. Every collector module is pinned to one
// release in go.mod.
//
// Build it with `scripts/setup.sh --only collector`; it lands in
// $SLUICE_CACHE/bin/otelcol-sluice and is started by integration-tests/src/collector.rs.
package main

import (
	"log"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/otelcol"
)

// version is the collector release every module in go.mod is pinned to.
const version = "0.161.0"

func main() {
	settings := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "otelcol-sluice",
			Description: "OpenTelemetry Collector for Sluice integration tests",
			Version:     version,
		},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				// otelcol.NewCommand makes "env" the default scheme of ${...}, so the
				// env provider must be there too.
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(),
					fileprovider.NewFactory(),
				},
			},
		},
	}
	if err := otelcol.NewCommand(settings).Execute(); err != nil {
		log.Fatalf("collector server run finished with error: %v", err)
	}
}
