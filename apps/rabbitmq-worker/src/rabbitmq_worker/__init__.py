"""Publisher and consumer for the kubelab KEDA lab (RabbitMQ queue `hello`)."""

__version__ = "1.0.0"
