//! Full TLS handshakes per second: every request on a new connection, no session resumption.
//!
//! ```text
//! tls-handshakes --port 18442 [--connections 16] [--duration 10] [--host 127.0.0.1]
//!                [--sni localhost] [--path /]
//! ```
//!
//! wrk and oha cannot measure this: both keep the session of a closed connection and resume
//! it on the next one (an nginx log of `$ssl_session_reused` shows "r" on all but the first
//! handshake of each connection slot). Python's and `openssl s_time`'s OpenSSL 3.0 client
//! spends about 1.7 ms of CPU per handshake, twice the server's, so the client on CPU 1
//! would be the bottleneck. This client uses rustls with ring: resumption is off, so every
//! handshake is a full one (TLS 1.3, X25519, the server's ECDSA P-256 signature verified;
//! the certificate chain is not, it is self-signed).
//!
//! Each of --connections threads loops until --duration is up: connect, full handshake,
//! `GET / HTTP/1.1` with `Connection: close`, read the response to EOF, close. One request
//! per connection, so requests = handshakes. Prints one JSON object on stdout.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use rustls::{HandshakeKind, StreamOwned};

/// Accepts any certificate, but checks the handshake signatures like any client.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

struct Args {
    host: String,
    port: u16,
    sni: String,
    path: String,
    connections: usize,
    duration: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        host: "127.0.0.1".into(),
        port: 0,
        sni: "localhost".into(),
        path: "/".into(),
        connections: 16,
        duration: Duration::from_secs(10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--host" => args.host = value.clone(),
            "--port" => args.port = value.parse().map_err(|_| bad)?,
            "--sni" => args.sni = value.clone(),
            "--path" => args.path = value.clone(),
            "--connections" => args.connections = value.parse().map_err(|_| bad)?,
            "--duration" => {
                let seconds: f64 = value.parse().map_err(|_| bad)?;
                args.duration = Duration::from_secs_f64(seconds);
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.port == 0 || args.connections == 0 {
        return Err("usage: tls-handshakes --port PORT [--connections N] [--duration S]".into());
    }
    Ok(args)
}

#[derive(Default)]
struct Counts {
    requests: u64,
    statuses: BTreeMap<String, u64>,
    errors: u64,
    error_samples: Vec<String>,
    resumed: u64,
    protocol: Option<String>,
    cipher: Option<String>,
    latency: Duration,
}

impl Counts {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.error_samples.len() < 3 {
            self.error_samples.push(what);
        }
    }

    fn add(&mut self, other: Counts) {
        self.requests += other.requests;
        for (code, n) in other.statuses {
            *self.statuses.entry(code).or_default() += n;
        }
        self.errors += other.errors;
        for sample in other.error_samples {
            if self.error_samples.len() < 5 {
                self.error_samples.push(sample);
            }
        }
        self.resumed += other.resumed;
        self.protocol = self.protocol.take().or(other.protocol);
        self.cipher = self.cipher.take().or(other.cipher);
        self.latency += other.latency;
    }
}

/// One connection: handshake, request, response to EOF. Returns the status code.
fn exchange(
    args: &Args,
    config: &Arc<ClientConfig>,
    name: &ServerName<'static>,
    counts: &mut Counts,
) -> Result<String, String> {
    let tcp = TcpStream::connect((args.host.as_str(), args.port)).map_err(|e| format!("{e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("{e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| format!("{e}"))?;
    let conn = ClientConnection::new(Arc::clone(config), name.clone())
        .map_err(|e| format!("{e}"))?;
    let mut tls = StreamOwned::new(conn, tcp);
    let request =
        format!("GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", args.path, args.host);
    tls.write_all(request.as_bytes()).map_err(|e| format!("handshake or write: {e}"))?;
    if tls.conn.handshake_kind() != Some(HandshakeKind::Full) {
        counts.resumed += 1;
    }
    if counts.protocol.is_none() {
        counts.protocol = tls.conn.protocol_version().map(|v| format!("{v:?}"));
        counts.cipher = tls.conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite()));
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            // A close without close_notify after the whole response is normal for HTTP.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let line = response.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/") => Ok(code.to_string()),
        _ => Err(format!("no status line in {} bytes", response.len())),
    }
}

fn worker(args: &Args, config: &Arc<ClientConfig>, deadline: Instant) -> Counts {
    let mut counts = Counts::default();
    let name = match ServerName::try_from(args.sni.clone()) {
        Ok(name) => name,
        Err(e) => {
            counts.error(format!("bad --sni: {e}"));
            return counts;
        }
    };
    while Instant::now() < deadline {
        let started = Instant::now();
        match exchange(args, config, &name, &mut counts) {
            Ok(code) => {
                counts.requests += 1;
                counts.latency += started.elapsed();
                *counts.statuses.entry(code).or_default() += 1;
            }
            Err(e) => counts.error(e),
        }
    }
    counts
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("tls-handshakes: {e}");
            std::process::exit(2);
        }
    };
    let provider = Arc::new(ring::default_provider());
    let mut config = match ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        Err(e) => {
            eprintln!("tls-handshakes: {e}");
            std::process::exit(2);
        }
    };
    config.resumption = Resumption::disabled();
    let config = Arc::new(config);

    let started = Instant::now();
    let deadline = started + args.duration;
    let mut total = Counts::default();
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..args.connections)
            .map(|_| scope.spawn(|| worker(&args, &config, deadline)))
            .collect();
        for thread in threads {
            match thread.join() {
                Ok(counts) => total.add(counts),
                Err(_) => total.error("a client thread panicked".into()),
            }
        }
    });
    let wall = started.elapsed().as_secs_f64();
    let statuses: Vec<String> =
        total.statuses.iter().map(|(code, n)| format!("{}: {n}", json_string(code))).collect();
    let samples: Vec<String> = total.error_samples.iter().map(|s| json_string(s)).collect();
    let mean_latency_us = if total.requests > 0 {
        format!("{:.1}", total.latency.as_secs_f64() * 1e6 / total.requests as f64)
    } else {
        "null".into()
    };
    println!(
        "{{\"tool\": \"tls-handshakes\", \"connections\": {}, \"duration_s\": {wall:.3}, \
         \"requests\": {}, \"rps\": {:.1}, \"statuses\": {{{}}}, \"errors\": {}, \
         \"error_samples\": [{}], \"resumed\": {}, \"protocol\": {}, \"cipher\": {}, \
         \"mean_latency_us\": {mean_latency_us}}}",
        args.connections,
        total.requests,
        total.requests as f64 / wall,
        statuses.join(", "),
        total.errors,
        samples.join(", "),
        total.resumed,
        json_string(total.protocol.as_deref().unwrap_or("?")),
        json_string(total.cipher.as_deref().unwrap_or("?")),
    );
}
