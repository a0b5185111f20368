package main

import "github.com/spf13/pflag"

func newTestFlagSet(cfg *gatewayConfig) *pflag.FlagSet {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	addDeviceFlags(fs, cfg)
	addGatewayFlags(fs, cfg)
	return fs
}
