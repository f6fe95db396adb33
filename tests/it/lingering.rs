//! Refused requests are readable by a plain client that is still sending: after the answer the
//! gateway keeps reading and discarding the rest of the body (a lingering close), within
//! `body_timeout_secs` of the request's start and a bounded size, before it closes.
//!
//! The clients here are blocking `std::net::TcpStream`s, like `http.client` or `curl`: they write
//! the whole body, then read. Closing a socket with unread input resets it, and the reset makes
//! such a client lose the answer that was already waiting for it.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hookgate::providers::ProviderId;

use crate::backend_tests;
use crate::support::{Backend, TestApp};

const MIB: usize = 1024 * 1024;

/// A request head for `path` declaring `length` bytes of body.
fn head(path: &str, length: usize, extra: &[(&str, String)]) -> Vec<u8> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n"
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// A JSON body of exactly `size` bytes.
fn body(size: usize) -> Vec<u8> {
    let mut body = b"{\"pad\":\"".to_vec();
    body.resize(size - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .expect("write timeout");
    stream
}

/// Reads one HTTP/1.1 response (head, then `content-length` bytes of body), as `http.client`
/// does: the connection may stay open after it.
fn read_response(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut answer = Vec::new();
    let mut byte = [0_u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("end of stream after {} bytes", answer.len()),
            ));
        }
        answer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&answer).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0_u8; length];
    stream.read_exact(&mut body)?;
    answer.extend_from_slice(&body);
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// One plain request: the head and the whole body are written, then the answer is read. With
/// `read_while_sending`, a second thread reads the answer as it arrives instead. Returns the
/// answer, or the error the client met (a reset, a broken pipe).
fn plain_post(
    addr: SocketAddr,
    request_head: &[u8],
    body: &[u8],
    read_while_sending: bool,
) -> std::io::Result<String> {
    let mut stream = connect(addr);
    let reader = read_while_sending.then(|| {
        let mut reading = stream.try_clone().expect("clone");
        std::thread::spawn(move || read_response(&mut reading))
    });
    let written = stream
        .write_all(request_head)
        .and_then(|()| stream.write_all(body));
    let answer = match reader {
        Some(reader) => reader.join().expect("reader thread"),
        None => match &written {
            Ok(()) => read_response(&mut stream),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        },
    };
    written?;
    answer
}

/// Sends `count` plain requests (alternately reading after and while sending) and asserts that
/// every one read an answer with `status` and the error `code`.
async fn all_read(
    addr: SocketAddr,
    request_head: Vec<u8>,
    body: Vec<u8>,
    count: usize,
    status: u16,
    code: &str,
) {
    let code = code.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        for i in 0..count {
            match plain_post(addr, &request_head, &body, i % 2 == 1) {
                Ok(answer)
                    if answer.starts_with(&format!("HTTP/1.1 {status} "))
                        && answer.contains(&format!("\"error\":\"{code}\"")) => {}
                Ok(answer) => failures.push(format!(
                    "#{i}: {}",
                    answer.lines().next().unwrap_or("(empty answer)")
                )),
                Err(e) => failures.push(format!("#{i}: {e}")),
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {count} requests did not read the {status}: {failures:?}",
            failures.len()
        );
    })
    .await
    .expect("client thread");
}

async fn refused_large_bodies_are_read(backend: Backend) {
    let app = TestApp::builder(backend)
        .config(|c| c.max_body_bytes = 2 * MIB)
        .connection("big", ProviderId::Stripe, &["whsec_big"])
        .start()
        .await;
    let path = "/integrations/stripe/webhook/big";
    // 413: a declared 3 MiB body to a 2 MiB limit, refused before a byte of it is read.
    all_read(
        app.addr,
        head(path, 3 * MIB, &[]),
        body(3 * MIB),
        50,
        413,
        "body_too_large",
    )
    .await;
    // 401: a large body (within the limit) with a signature that does not match.
    let signature = format!("t={},v1={}", hookgate::now_ms() / 1000, "0".repeat(64));
    all_read(
        app.addr,
        head(path, 2 * MIB - 1024, &[("stripe-signature", signature)]),
        body(2 * MIB - 1024),
        50,
        401,
        "signature_mismatch",
    )
    .await;
    // Every refusal is still logged.
    let items = app
        .ingest_until("/admin/ingest?connection=big&limit=500", |items| {
            items.len() >= 100
        })
        .await;
    assert_eq!(items.len(), 100, "{items:?}");
}

/// The other refusals that come before the body is read: unknown connection, allowlist, rate
/// limit.
async fn early_refusals_are_read(backend: Backend) {
    let app = TestApp::builder(backend)
        .config(|c| c.max_body_bytes = 2 * MIB)
        .connection_with("fenced", ProviderId::Stripe, &["whsec_f"], |s| {
            s.allow_ips = vec!["10.0.0.0/8".into()];
        })
        .connection_with("slow", ProviderId::Stripe, &["whsec_s"], |s| {
            s.rate_limit_per_sec = Some(1);
            s.rate_limit_burst = Some(1);
        })
        .start()
        .await;
    let big = body(3 * MIB);
    let at = |id: &str| head(&format!("/integrations/stripe/webhook/{id}"), 3 * MIB, &[]);
    all_read(
        app.addr,
        at("nobody-here"),
        big.clone(),
        10,
        404,
        "not_found",
    )
    .await;
    all_read(
        app.addr,
        at("fenced"),
        big.clone(),
        10,
        403,
        "ip_not_allowed",
    )
    .await;
    // The first request takes the only token (and is refused for its size); the rest are 429.
    all_read(app.addr, at("slow"), big.clone(), 1, 413, "body_too_large").await;
    all_read(app.addr, at("slow"), big, 10, 429, "rate_limited").await;
}

backend_tests!(refused_large_bodies_are_read, early_refusals_are_read);

/// Writes `chunk` every `pause` until a write fails; returns when it failed and how much was
/// written. Gives up (panics) after `limit`.
fn write_until_closed(
    stream: &mut TcpStream,
    chunk: &[u8],
    pause: Duration,
    limit: Duration,
) -> (Instant, usize) {
    let start = Instant::now();
    let mut written = 0;
    loop {
        match stream.write_all(chunk) {
            Ok(()) => written += chunk.len(),
            Err(_) => return (Instant::now(), written),
        }
        assert!(
            start.elapsed() < limit,
            "the gateway still reads after {limit:?} ({written} bytes discarded)"
        );
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}

/// Starts a refused request (a declared `declared` bytes to a 2 MiB limit) and reads its answer
/// on a second thread; returns the stream to keep writing on and the reader.
fn refused_request(
    addr: SocketAddr,
    declared: usize,
) -> (TcpStream, std::thread::JoinHandle<String>) {
    let mut stream = connect(addr);
    stream
        .write_all(&head("/integrations/stripe/webhook/big", declared, &[]))
        .expect("head");
    let mut reading = stream.try_clone().expect("clone");
    let reader = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let _ = reading.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    });
    (stream, reader)
}

/// A client that keeps trickling its body is cut off `body_timeout_secs` after its request
/// started (2 s here), though it never pauses long enough to look idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lingering_ends_at_the_body_timeout() {
    let app = TestApp::builder(Backend::Sqlite)
        .config(|c| c.max_body_bytes = 2 * MIB)
        .connection("big", ProviderId::Stripe, &["whsec_big"])
        .start()
        .await;
    let addr = app.addr;
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let (mut stream, reader) = refused_request(addr, 64 * MIB);
        let (closed, written) = write_until_closed(
            &mut stream,
            &[b'x'; 16 * 1024],
            Duration::from_millis(50),
            Duration::from_secs(8),
        );
        let after = closed - started;
        assert!(
            after >= Duration::from_millis(1500) && after < Duration::from_secs(5),
            "closed {after:?} after the request started ({written} bytes written)"
        );
        let answer = reader.join().expect("reader");
        assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    })
    .await
    .expect("client thread");
}

/// A client that sends as fast as it can is cut off once the discarded bytes pass the bound
/// (16 MiB with a 2 MiB limit), long before its declared 256 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lingering_ends_at_the_size_bound() {
    let app = TestApp::builder(Backend::Sqlite)
        .config(|c| {
            c.max_body_bytes = 2 * MIB;
            c.body_timeout_secs = 30;
        })
        .connection("big", ProviderId::Stripe, &["whsec_big"])
        .start()
        .await;
    let addr = app.addr;
    tokio::task::spawn_blocking(move || {
        let (mut stream, reader) = refused_request(addr, 256 * MIB);
        let (_, written) = write_until_closed(
            &mut stream,
            &[b'x'; 64 * 1024],
            Duration::ZERO,
            Duration::from_secs(20),
        );
        // What the gateway discarded, plus what the two sockets' buffers held when it closed.
        assert!(
            (16 * MIB..48 * MIB).contains(&written),
            "{written} bytes written before the close"
        );
        let answer = reader.join().expect("reader");
        assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    })
    .await
    .expect("client thread");
}

/// A client that stops sending (without closing) is closed on after 2 s of silence, though
/// `body_timeout_secs` would allow more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lingering_ends_when_the_client_goes_quiet() {
    let app = TestApp::builder(Backend::Sqlite)
        .config(|c| {
            c.max_body_bytes = 2 * MIB;
            c.body_timeout_secs = 30;
        })
        .connection("big", ProviderId::Stripe, &["whsec_big"])
        .start()
        .await;
    let addr = app.addr;
    tokio::task::spawn_blocking(move || {
        let (mut stream, reader) = refused_request(addr, 3 * MIB);
        stream.write_all(&[b'x'; 4096]).expect("a first part");
        // The answer arrives, then end-of-stream from the gateway's side.
        let answer = reader.join().expect("reader");
        assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
        // Quiet for longer than the gateway waits: it has closed, so the next writes fail
        // (the first one draws a reset).
        std::thread::sleep(Duration::from_millis(3500));
        let (closed, written) = write_until_closed(
            &mut stream,
            &[b'x'; 1024],
            Duration::from_millis(100),
            Duration::from_secs(2),
        );
        assert!(
            written <= 1024,
            "the gateway still read {written} bytes at {closed:?}"
        );
    })
    .await
    .expect("client thread");
}
