"""The checker -> agent -> poller -> core pull chain, over wRPC (TCP at the edge, NATS to the cloud).

- ``serviceradar-checker``: runs port / HTTP / host-metrics checks, serves ``checker`` over wRPC TCP.
- ``serviceradar-agent``: polls its checkers over TCP, serves ``agent`` over wRPC TCP.
- ``serviceradar-poller``: polls agents on an interval, queues each report into JetStream on
  ``serviceradar.<tenant>.checker.results``.
- ``serviceradar-core``: a durable JetStream consumer that stores the reports (JSON lines).
"""
