//! The effective configuration as JSON for `GET /config`: every value after defaults,
//! with secrets (the admin token, sticky-cookie keys) redacted.

use crate::config::{Cluster, Config, HostMatch, Listener, PathMatch, Route, RouteAction, Workers};
use serde_json::{Value, json};

const REDACTED: &str = "<redacted>";

/// The whole effective config.
pub(super) fn render(config: &Config) -> Value {
    let workers = match &config.workers {
        Workers::All => json!("all"),
        Workers::Count(count) => json!(count),
        Workers::Cores(cores) => json!(cores),
    };
    let limits = &config.limits;
    let timeouts = &config.timeouts;
    let log_path =
        config.access_log.path.as_ref().map_or("stdout".into(), |path| path.display().to_string());
    let listeners: Vec<Value> =
        config.listeners.iter().map(|listener| listener_json(config, listener)).collect();
    json!({
        "workers": workers,
        "shutdown_timeout_ms": config.shutdown_timeout.as_millis(),
        "log": {
            "format": config.log.format.as_str(),
            "level": config.log.level.as_str().to_ascii_lowercase(),
        },
        "io": {
            "driver": config.io.driver.as_str(),
            "ring_entries": config.io.ring_entries,
            "ring_taskrun": config.io.ring_taskrun.as_str(),
            "buffer_bytes": config.io.buffer_bytes,
        },
        "limits": {
            "header_bytes_max": limits.head.header_bytes_max,
            "headers_count_max": limits.head.headers_count_max,
            "uri_bytes_max": limits.head.uri_bytes_max,
            "body_bytes_max": limits.body_bytes_max,
            "chunk_extension_bytes_max": limits.chunked.extension_bytes_max,
            "trailer_bytes_max": limits.chunked.trailer_bytes_max,
            "body_rate_min_bytes": limits.body_rate_min_bytes,
            "request_buffer_bytes": limits.request_buffer_bytes,
            "request_buffers_bytes_max": limits.request_buffers_bytes_max,
        },
        "timeouts": {
            "client_header_timeout_ms": timeouts.client_header.as_millis(),
            "client_body_timeout_ms": timeouts.client_body.as_millis(),
            "client_write_timeout_ms": timeouts.client_write.as_millis(),
            "keep_alive_timeout_ms": timeouts.keep_alive.as_millis(),
        },
        "admin": {
            "addr": config.admin.addr.map(|addr| addr.to_string()),
            "token": config.admin.token.as_ref().map(|_| REDACTED),
        },
        "stats": { "interval_ms": config.stats_interval.as_millis() },
        "access_log": {
            "path": log_path,
            "request_id_header": String::from_utf8_lossy(&config.access_log.request_id_header),
        },
        "listener": listeners,
        "cluster": config.clusters.iter().map(cluster_json).collect::<Vec<_>>(),
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn listener_json(config: &Config, listener: &Listener) -> Value {
    json!({
        "name": listener.name,
        "addr": listener.addr.to_string(),
        "backlog": listener.backlog,
        "access_log": listener.access_log.as_str(),
        "route": listener.routes.iter().map(|route| route_json(config, route)).collect::<Vec<_>>(),
    })
}

fn route_json(config: &Config, route: &Route) -> Value {
    let host = route.host.as_ref().map(|host| match host {
        HostMatch::Exact(name) => text(name),
        HostMatch::Suffix(suffix) => format!("*{}", text(suffix)),
    });
    let (path, path_prefix) = match &route.path {
        Some(PathMatch::Exact(path)) => (Some(text(path)), None),
        Some(PathMatch::Prefix(prefix)) => (None, Some(text(prefix))),
        None => (None, None),
    };
    let pair = name_value_json;
    let action = match &route.action {
        RouteAction::Cluster(id) => json!({ "cluster": config.clusters[id.0 as usize].name }),
        RouteAction::Respond(fixed) => json!({ "respond": { "status": fixed.status } }),
        RouteAction::RedirectHttps { status, port } => {
            json!({ "redirect_https": { "status": status, "port": port } })
        }
    };
    json!({
        "host": host,
        "path": path,
        "path_prefix": path_prefix,
        "methods": route.methods.iter().map(|method| text(method)).collect::<Vec<_>>(),
        "header": route.header.as_ref().map(pair),
        "cookie": route.cookie.as_ref().map(pair),
        "action": action,
    })
}

fn cluster_json(cluster: &Cluster) -> Value {
    let health = cluster.health_check.as_ref().map(|check| {
        json!({
            "kind": check.probe.as_str(),
            "path": match &check.probe {
                crate::config::Probe::Http(http) => Some(http.path.clone()),
                crate::config::Probe::Tcp | crate::config::Probe::Udp(_) => None,
            },
            "port": check.port,
            "interval_ms": check.interval.as_millis(),
            "timeout_ms": check.timeout.as_millis(),
            "rise": check.rise,
            "fall": check.fall,
        })
    });
    let backends: Vec<Value> = cluster
        .backends
        .iter()
        .map(|backend| {
            json!({
                "addr": backend.host,
                "resolved": backend.addr.to_string(),
                "weight": backend.weight,
                "state": backend.state.as_str(),
            })
        })
        .collect();
    json!({
        "name": cluster.name,
        "backends": backends,
        "balance": cluster.balance.as_str(),
        "hash_key": cluster.hash_key.to_string(),
        "bounded_load": cluster.bounded_load,
        "slow_start_ms": cluster.slow_start.as_millis(),
        "connect_timeout_ms": cluster.connect_timeout.as_millis(),
        "response_timeout_ms": cluster.response_timeout.as_millis(),
        "pool_idle_max": cluster.pool_idle_max,
        "pool_idle_timeout_ms": cluster.pool_idle_timeout.as_millis(),
        "pool_requests_max": cluster.pool_requests_max,
        "host_rewrite": cluster.host_rewrite,
        "retries": cluster.retries,
        "retry_budget": cluster.retry_budget,
        "fail_open": cluster.fail_open,
        "health_check": health,
        "outlier": {
            "consecutive_failures": cluster.outlier.consecutive_failures,
            "distinct_clients": cluster.outlier.distinct_clients,
            "on_5xx": cluster.outlier.on_5xx,
            "eject_ms": cluster.outlier.eject.as_millis(),
            "eject_max_ms": cluster.outlier.eject_max.as_millis(),
        },
        "sticky": cluster.sticky.as_ref().map(|sticky| json!({
            "cookie": sticky.cookie,
            "attributes": sticky.attributes,
            "key": REDACTED,
        })),
    })
}

fn name_value_json(pair: &crate::config::NameValue) -> Value {
    json!({ "name": text(&pair.name), "value": pair.value.as_deref().map(text) })
}
