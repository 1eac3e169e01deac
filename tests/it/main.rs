//! Integration tests: the whole proxy over loopback sockets, against scripted origins,
//! on both io drivers. One binary (`cargo test --test it`); shared pieces live in
//! `support`.

// A failed check panics with its evidence and a test may say what it measured: that is
// how a test reports, so the lints that keep both out of the proxy do not apply here.
#![allow(clippy::panic, clippy::print_stderr, reason = "test code reports by panicking")]

mod support;

// Keep-alive, pipelining, chunked and close-delimited bodies, 100-continue, bodiless
// responses, upgrades, several workers.
mod http1;
// Each limit and failure with its exact status; unmatched and fixed-response routes.
mod limits;
// X-Forwarded-*, Via, hop-by-hop removal both ways, Host and host_rewrite.
mod headers;
// Routing rules end to end; the first match wins.
mod routing;
// A backend down and back, retries on stale pooled connections, balancing.
mod upstream;
// Policies, hashing, slow start, failover, health checks, stickiness, draining, retries.
mod balance;
// Graceful shutdown in process and of the binary, requests queued at shutdown; a 64 MiB
// body in bounded memory.
mod lifecycle;
// Stats, metrics, access logs, auth and backend states over the admin listener.
mod admin;
// Hot reload of the whole config under load: nothing lost, listeners, WebSockets.
mod reload;
// Binary upgrade: sockets handed to the new process, nothing lost, a failed one harmless.
mod upgrade;
// The real curl as the client.
mod curl;
// HTTP/2 clients (h2c and TLS): curl, h2load and the h2 crate's client.
mod http2;
// HTTP/2 flood defenses with raw frames: GOAWAY per case, other connections unharmed.
mod http2_flood;
// gRPC over HTTP/2: proxy errors as gRPC statuses, grpc-timeout.
mod grpc;
// Response compression: negotiation, every encoding and framing, SSE, the coder cap.
mod compress;
// The binary's command line: check, --version, --help.
mod cli;
// The incident verbs (status, backend, top) against a running proxy.
mod cli_verbs;
// Prometheus rules and tests, the Grafana dashboard, and the metrics they name.
mod deploy;
// The dashboard in headless Chromium: live numbers, a drain, an admin restart.
mod dashboard;
// `ringway tune`: host inspection and recommendations, as text and JSON.
mod tune;
// Every file in config/ parses.
mod config_examples;
// Every committed fuzz seed through its target's property check.
mod fuzz_seeds;
// House rules: module docs, line and file length, layering.
mod tidy;
// How far per-worker least connections strays from a global choice (a simulation).
mod sim_cache;
mod sim_least_connections;
// RFC 9112 strictness: ambiguous requests get 400 and a close, bad responses 502.
mod strict;
// Edge protection: IP lists, trusted proxies, filters, rate limits, caps, slow clients.
mod protect;
// Backends from DNS: answers that change under load, a failing server, SRV weights.
mod discovery;
// Backends from a real etcd: instances register, expire and leave under load.
mod discovery_etcd;
// Global rate limits: two proxies share one rate through a real redis-server.
mod global_rate;
// Parser hardening, round 2: target forms, chunk extensions, oversized chunk sizes.
mod hardening_parse;
// The API gateway: authentication (Basic, API keys, JWT), authorization, identity headers.
mod gateway;
mod gateway_jwt;
mod gateway_external;
mod gateway_rewrite;
mod gateway_http2;

// The response cache: hits, revalidation, conditionals, Vary, invalidation, stale, bounds.
mod cache;

// The exchange in phases: trailers, full duplex, early answers.
mod phases;
// Hardening, round 2: pool poisoning, early answers, slow and malformed bodies, stale pool.
mod hardening;

// TLS termination: SNI, versions, resumption, mTLS, redirect, reload.
mod tls;

// TLS origination to backends, a tunnel and large bodies over TLS.
mod tls_upstream;

// The forward proxy: absolute-form and CONNECT with curl, bad targets, resolution.
mod forward;
// Its access rules, destination address rules, proxy authentication and anonymity.
mod forward_acl;
// Its counters in /stats and /metrics, and its access-log lines.
mod forward_observe;
// Its response rules: content types, URL lists, body rules, 10 MiB in bounded memory.
mod forward_filter;

// L4: TCP balancing, half-close, PROXY protocol in and out, TLS passthrough by SNI.
mod l4;
// The two L4 relays, copy and splice: bulk both ways, half-close each way, the pipe bound.
mod l4_relay;
// PROXY headers in front of TLS: HTTP TLS listeners and TLS passthrough by SNI.
mod l4_proxy_tls;
// TLS passthrough with openssl s_client to TLS backends; ClientHello cap and timeout.
mod l4_sni;
// UDP listeners: flow affinity, one-response flows, idle expiry, the flow bound, probes.
mod l4_udp;
