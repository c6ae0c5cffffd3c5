"""The product's own example queries (SRQL.md "Must compile"), shared by tests, benchmarks, docs and help."""

SRQL_MD_EXAMPLES: tuple[str, ...] = (
    "STREAM devices WHERE metric = 'latency' GROUP BY device, metric WINDOW 1m HAVING avg_value > 100",
    "STREAM netflow WHERE bytes > 0 GROUP BY application WINDOW 5m ORDER BY sum(bytes) DESC LIMIT 10",
    "STREAM logs WHERE message CONTAINS 'Failed password for root' GROUP BY device WINDOW 5m "
    "HAVING login_attempts >= 5",
    "STREAM flows WHERE action IN ('announce', 'withdraw') GROUP BY prefix WINDOW 5m HAVING flap_count > 10",
    "STREAM netflow JOIN logs ON src_ip = device WITHIN 5m WHERE message CONTAINS 'Failed password' "
    "GROUP BY src_ip WINDOW 5m HAVING attempts >= 3",
    "STREAM logs JOIN inventory ON logs.device = inventory.device WHERE severity <= 3 GROUP BY site WINDOW 1m "
    "HAVING errors > 100",
)
