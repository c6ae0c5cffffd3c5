"""The NATS edge-to-cloud fabric: hub/leaf config generation, a SPIFFE dev CA, and the cloud receiver."""
