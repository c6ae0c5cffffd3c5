-- proton

CREATE STREAM IF NOT EXISTS device_inventory
(
  `device` string,
  `ip` string,
  `hostname` string,
  `mac` string,
  `site` low_cardinality(string),
  `role` low_cardinality(string),
  `vendor` low_cardinality(string),
  `model` low_cardinality(string),
  `last_seen` datetime64(3, 'UTC')
)
PRIMARY KEY (device)
SETTINGS mode = 'versioned_kv', version_column = 'last_seen', event_time_column = 'last_seen';

CREATE STREAM IF NOT EXISTS gnmi_stream
(
  `timestamp` datetime64(3, 'UTC'),
  `device` string,
  `metric` low_cardinality(string),
  `value` nullable(float64),
  `value_str` nullable(string),
  `labels` map(string, string),
  `deleted` bool
)
SETTINGS event_time_column = 'timestamp';

CREATE STREAM IF NOT EXISTS netflow_stream
(
  `timestamp` datetime64(3, 'UTC'),
  `exporter` string,
  `src_ip` string,
  `dst_ip` string,
  `src_port` uint16,
  `dst_port` uint16,
  `protocol` uint8,
  `bytes` uint64,
  `packets` uint64,
  `tcp_flags` uint8,
  `tos` uint8,
  `src_as` uint32,
  `dst_as` uint32,
  `in_if` uint32,
  `out_if` uint32,
  `next_hop` nullable(string),
  `flow_start` datetime64(3, 'UTC'),
  `sampling_interval` uint32,
  `application` low_cardinality(string),
  `version` uint16
)
SETTINGS event_time_column = 'timestamp';

CREATE STREAM IF NOT EXISTS syslog_stream
(
  `timestamp` datetime64(3, 'UTC'),
  `device` string,
  `source_ip` string,
  `facility` uint8,
  `severity` uint8,
  `app_name` low_cardinality(string),
  `proc_id` nullable(string),
  `msg_id` nullable(string),
  `message` string,
  `structured_data` nullable(string),
  `trace_id` nullable(string),
  `parse_error` bool
)
SETTINGS event_time_column = 'timestamp';

CREATE STREAM IF NOT EXISTS snmp_traps
(
  `timestamp` datetime64(3, 'UTC'),
  `device` string,
  `source_ip` string,
  `version` low_cardinality(string),
  `community` string,
  `pdu_type` low_cardinality(string),
  `trap_oid` string,
  `uptime` uint32,
  `varbinds` map(string, string),
  `varbind_types` map(string, string)
)
SETTINGS event_time_column = 'timestamp';

CREATE STREAM IF NOT EXISTS bgp_updates
(
  `timestamp` datetime64(3, 'UTC'),
  `router` string,
  `peer` string,
  `peer_as` uint32,
  `prefix` string,
  `action` low_cardinality(string),
  `as_path` array(uint32),
  `next_hop` nullable(string),
  `origin` low_cardinality(nullable(string)),
  `med` nullable(uint32),
  `local_pref` nullable(uint32),
  `communities` array(string),
  `large_communities` array(string),
  `path_id` uint32,
  `post_policy` bool,
  `loc_rib` bool
)
SETTINGS event_time_column = 'timestamp';

CREATE STREAM IF NOT EXISTS bgp_peer_events
(
  `timestamp` datetime64(3, 'UTC'),
  `router` string,
  `peer` string,
  `peer_as` uint32,
  `state` low_cardinality(string),
  `reason` nullable(string)
)
SETTINGS event_time_column = 'timestamp';

-- clickhouse

CREATE TABLE IF NOT EXISTS device_inventory
(
    `device` String,
    `ip` String,
    `hostname` String,
    `mac` String,
    `site` LowCardinality(String),
    `role` LowCardinality(String),
    `vendor` LowCardinality(String),
    `model` LowCardinality(String),
    `last_seen` DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(last_seen)
ORDER BY (device);

CREATE TABLE IF NOT EXISTS gnmi_stream
(
    `timestamp` DateTime64(3, 'UTC'),
    `device` String,
    `metric` LowCardinality(String),
    `value` Nullable(Float64),
    `value_str` Nullable(String),
    `labels` Map(String, String),
    `deleted` Bool
)
ENGINE = MergeTree
PARTITION BY toDate(timestamp)
ORDER BY (device, metric, timestamp)
TTL toDateTime(timestamp) + INTERVAL 90 DAY;

CREATE TABLE IF NOT EXISTS netflow_stream
(
    `timestamp` DateTime64(3, 'UTC'),
    `exporter` String,
    `src_ip` String,
    `dst_ip` String,
    `src_port` UInt16,
    `dst_port` UInt16,
    `protocol` UInt8,
    `bytes` UInt64,
    `packets` UInt64,
    `tcp_flags` UInt8,
    `tos` UInt8,
    `src_as` UInt32,
    `dst_as` UInt32,
    `in_if` UInt32,
    `out_if` UInt32,
    `next_hop` Nullable(String),
    `flow_start` DateTime64(3, 'UTC'),
    `sampling_interval` UInt32,
    `application` LowCardinality(String),
    `version` UInt16
)
ENGINE = MergeTree
PARTITION BY toDate(timestamp)
ORDER BY (exporter, timestamp)
TTL toDateTime(timestamp) + INTERVAL 90 DAY;

CREATE TABLE IF NOT EXISTS syslog_stream
(
    `timestamp` DateTime64(3, 'UTC'),
    `device` String,
    `source_ip` String,
    `facility` UInt8,
    `severity` UInt8,
    `app_name` LowCardinality(String),
    `proc_id` Nullable(String),
    `msg_id` Nullable(String),
    `message` String,
    `structured_data` Nullable(String),
    `trace_id` Nullable(String),
    `parse_error` Bool
)
ENGINE = MergeTree
PARTITION BY toDate(timestamp)
ORDER BY (device, timestamp)
TTL toDateTime(timestamp) + INTERVAL 90 DAY;

CREATE TABLE IF NOT EXISTS snmp_traps
(
    `timestamp` DateTime64(3, 'UTC'),
    `device` String,
    `source_ip` String,
    `version` LowCardinality(String),
    `community` String,
    `pdu_type` LowCardinality(String),
    `trap_oid` String,
    `uptime` UInt32,
    `varbinds` Map(String, String),
    `varbind_types` Map(String, String)
)
ENGINE = MergeTree
PARTITION BY toDate(timestamp)
ORDER BY (device, timestamp)
TTL toDateTime(timestamp) + INTERVAL 90 DAY;

CREATE TABLE IF NOT EXISTS bgp_updates
(
    `timestamp` DateTime64(3, 'UTC'),
    `router` String,
    `peer` String,
    `peer_as` UInt32,
    `prefix` String,
    `action` LowCardinality(String),
    `as_path` Array(UInt32),
    `next_hop` Nullable(String),
    `origin` LowCardinality(Nullable(String)),
    `med` Nullable(UInt32),
    `local_pref` Nullable(UInt32),
    `communities` Array(String),
    `large_communities` Array(String),
    `path_id` UInt32,
    `post_policy` Bool,
    `loc_rib` Bool
)
ENGINE = MergeTree
PARTITION BY toDate(timestamp)
ORDER BY (router, prefix, timestamp)
TTL toDateTime(timestamp) + INTERVAL 90 DAY;

CREATE TABLE IF NOT EXISTS bgp_peer_events
(
    `timestamp` DateTime64(3, 'UTC'),
    `router` String,
    `peer` String,
    `peer_as` UInt32,
    `state` LowCardinality(String),
    `reason` Nullable(String)
)
ENGINE = MergeTree
PARTITION BY toDate(timestamp)
ORDER BY (router, peer, timestamp)
TTL toDateTime(timestamp) + INTERVAL 90 DAY;

-- duckdb

CREATE TABLE IF NOT EXISTS device_inventory
(
    "device" VARCHAR,
    "ip" VARCHAR,
    "hostname" VARCHAR,
    "mac" VARCHAR,
    "site" VARCHAR,
    "role" VARCHAR,
    "vendor" VARCHAR,
    "model" VARCHAR,
    "last_seen" TIMESTAMP
);

CREATE TABLE IF NOT EXISTS gnmi_stream
(
    "timestamp" TIMESTAMP,
    "device" VARCHAR,
    "metric" VARCHAR,
    "value" DOUBLE,
    "value_str" VARCHAR,
    "labels" MAP(VARCHAR, VARCHAR),
    "deleted" BOOLEAN
);

CREATE TABLE IF NOT EXISTS netflow_stream
(
    "timestamp" TIMESTAMP,
    "exporter" VARCHAR,
    "src_ip" VARCHAR,
    "dst_ip" VARCHAR,
    "src_port" USMALLINT,
    "dst_port" USMALLINT,
    "protocol" UTINYINT,
    "bytes" UBIGINT,
    "packets" UBIGINT,
    "tcp_flags" UTINYINT,
    "tos" UTINYINT,
    "src_as" UINTEGER,
    "dst_as" UINTEGER,
    "in_if" UINTEGER,
    "out_if" UINTEGER,
    "next_hop" VARCHAR,
    "flow_start" TIMESTAMP,
    "sampling_interval" UINTEGER,
    "application" VARCHAR,
    "version" USMALLINT
);

CREATE TABLE IF NOT EXISTS syslog_stream
(
    "timestamp" TIMESTAMP,
    "device" VARCHAR,
    "source_ip" VARCHAR,
    "facility" UTINYINT,
    "severity" UTINYINT,
    "app_name" VARCHAR,
    "proc_id" VARCHAR,
    "msg_id" VARCHAR,
    "message" VARCHAR,
    "structured_data" VARCHAR,
    "trace_id" VARCHAR,
    "parse_error" BOOLEAN
);

CREATE TABLE IF NOT EXISTS snmp_traps
(
    "timestamp" TIMESTAMP,
    "device" VARCHAR,
    "source_ip" VARCHAR,
    "version" VARCHAR,
    "community" VARCHAR,
    "pdu_type" VARCHAR,
    "trap_oid" VARCHAR,
    "uptime" UINTEGER,
    "varbinds" MAP(VARCHAR, VARCHAR),
    "varbind_types" MAP(VARCHAR, VARCHAR)
);

CREATE TABLE IF NOT EXISTS bgp_updates
(
    "timestamp" TIMESTAMP,
    "router" VARCHAR,
    "peer" VARCHAR,
    "peer_as" UINTEGER,
    "prefix" VARCHAR,
    "action" VARCHAR,
    "as_path" UINTEGER[],
    "next_hop" VARCHAR,
    "origin" VARCHAR,
    "med" UINTEGER,
    "local_pref" UINTEGER,
    "communities" VARCHAR[],
    "large_communities" VARCHAR[],
    "path_id" UINTEGER,
    "post_policy" BOOLEAN,
    "loc_rib" BOOLEAN
);

CREATE TABLE IF NOT EXISTS bgp_peer_events
(
    "timestamp" TIMESTAMP,
    "router" VARCHAR,
    "peer" VARCHAR,
    "peer_as" UINTEGER,
    "state" VARCHAR,
    "reason" VARCHAR
);
