// Replaces lego's generated providers/dns/zz_gen_dns_providers.go when kubelab builds Traefik
// (in a vendored copy of this folder; see src/kubelab/embedded/build.py and tools/README.md).
//
// The original imports lego's ~180 DNS-01 providers; the Go module proxy this project builds
// from refuses the SDKs of some of them (403), and no lab uses an ACME DNS challenge. With this
// file Traefik still builds and runs, and a DNS challenge fails with a clear error instead.

package dns

import (
	"fmt"

	"github.com/go-acme/lego/v5/challenge"
)

// NewDNSChallengeProviderByName returns an error for every provider in this build.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("ACME DNS-01 provider %q is not compiled into this Traefik (kubelab's embedded-cluster build leaves DNS providers out); use the HTTP-01 or TLS-ALPN-01 challenge", name)
}
