"""probeapp-operator: reconciles ProbeApp objects (kubelab.dev/v1alpha1) into a Deployment of
the course's probe-test-app and a Service, and reports their readiness back in the status."""

GROUP = "kubelab.dev"
VERSION = "v1alpha1"
PLURAL = "probeapps"
KIND = "ProbeApp"
MANAGER = "probeapp-operator"  # field manager of its server-side applies, and its label value
