// Package ext stands in for Traefik's dynamic-configuration extension module.
//
// Traefik's go.mod requires github.com/traefik/traefik/dynamic/ext at a placeholder version and
// replaces it with a folder of its own repository; replaces do not apply to a dependency and the
// Go module proxy does not serve that module, so this pinning module provides it. Upstream the
// types are empty extension points (inlined into dynamic.HTTP and dynamic.Router); so are these.
package ext

// HTTP is inlined into Traefik's dynamic.HTTP configuration.
type HTTP struct{}

// Router is inlined into Traefik's dynamic.Router configuration.
type Router struct{}
