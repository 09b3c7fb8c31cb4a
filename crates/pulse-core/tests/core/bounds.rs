//! Network-fed buffers are bounded in bytes: a server that answers with 100 MB
//! (announced by Content-Length, or streamed without one) gets a clear error,
//! and Pulse never holds more than its bound; an error body is read only for
//! its first bytes, and its text is redacted before it is cut, so a token the
//! server echoes across the cut never shows half. A raw HTTP server on port 0
//! plays the hostile server.

use std::time::Duration;

use pulse_core::auth::Secret;
use pulse_core::rest::{RestClient, RestError, MAX_BODY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const HUNDRED_MB: usize = 100 * 1000 * 1000;

#[derive(Clone, Copy)]
enum Answer {
    /// 200 with `Content-Length: 100 MB`, then the bytes.
    Announced,
    /// 200 with no length: 100 MB of a JSON string until the close.
    Streamed,
    /// 500 with a 100 MB text body, no length.
    HugeError,
    /// 500 whose text has the token straddling the 200th character (at 195).
    EchoesToken,
}

const TOKEN: &str = "tok-0123456789abcdefghijklmnopqrstuvwxyz";

/// Serve every request with `answer`; the number of body bytes written is
/// reported back per connection (how much the client took before it hung up).
async fn server(answer: Answer) -> (String, tokio::sync::mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let (status, length, first): (&str, Option<usize>, Vec<u8>) = match answer {
                    Answer::Announced => ("200 OK", Some(HUNDRED_MB), b"\"".to_vec()),
                    Answer::Streamed => ("200 OK", None, b"{\"x\":\"".to_vec()),
                    Answer::HugeError => ("500 Internal Server Error", None, Vec::new()),
                    Answer::EchoesToken => {
                        let mut body = "x".repeat(185).into_bytes();
                        body.extend_from_slice(format!("bad token {TOKEN}").as_bytes());
                        let head = format!(
                            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = tcp.write_all(head.as_bytes()).await;
                        let _ = tcp.write_all(&body).await;
                        let _ = tx.send(body.len());
                        return;
                    }
                };
                let mut h = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n"
                );
                if let Some(n) = length {
                    h.push_str(&format!("content-length: {n}\r\n"));
                }
                h.push_str("\r\n");
                if tcp.write_all(h.as_bytes()).await.is_err() {
                    return;
                }
                let mut sent = 0usize;
                if tcp.write_all(&first).await.is_ok() {
                    sent += first.len();
                    let chunk = vec![b'a'; 1 << 20];
                    while sent < HUNDRED_MB {
                        let n = chunk.len().min(HUNDRED_MB - sent);
                        if tcp.write_all(&chunk[..n]).await.is_err() {
                            break;
                        }
                        sent += n;
                    }
                }
                let _ = tx.send(sent);
            });
        }
    });
    (url, rx)
}

async fn snapshot_error(answer: Answer) -> (RestError, usize) {
    let (url, mut sent) = server(answer).await;
    let rest = RestClient::new(url.parse().unwrap()).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(120), rest.snapshot(&Secret::new(TOKEN)))
        .await
        .expect("the client gave up on the body")
        .expect_err("a 100 MB snapshot is refused");
    let sent = tokio::time::timeout(Duration::from_secs(60), sent.recv())
        .await
        .expect("the server saw the client hang up")
        .unwrap();
    (err, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_snapshot_announced_by_its_length_is_refused_before_it_is_read() {
    let (err, _) = snapshot_error(Answer::Announced).await;
    let text = err.to_string();
    assert!(text.contains(&format!("over {MAX_BODY} bytes")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_snapshot_without_a_length_is_cut_at_the_bound() {
    let (err, sent) = snapshot_error(Answer::Streamed).await;
    let text = err.to_string();
    assert!(text.contains(&format!("over {MAX_BODY} bytes")), "{text}");
    assert!(
        sent < HUNDRED_MB,
        "the client read all {sent} bytes instead of stopping at its bound"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_error_body_is_read_only_for_its_first_bytes() {
    let (err, sent) = snapshot_error(Answer::HugeError).await;
    let text = err.to_string();
    assert!(text.contains("500"), "{text}");
    assert!(text.len() < 1000, "error text of {} bytes", text.len());
    assert!(
        sent < HUNDRED_MB,
        "the client read the whole error body ({sent} bytes)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echoed_token_across_the_excerpt_cut_is_redacted_first() {
    let (err, _) = snapshot_error(Answer::EchoesToken).await;
    let text = err.to_string();
    // Cut first, the excerpt would end in the token's first characters.
    assert!(!text.contains(&TOKEN[..5]), "{text}");
    assert!(text.contains("***"), "{text}");
}

/// A server that answers 302 to another one: the redirect is not followed, so
/// the token never reaches the other server, and the error says 302.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_never_follows_a_redirect_with_the_token() {
    let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_url = format!("http://{}/v1/snapshot", other.local_addr().unwrap());
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = other.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            let _ = seen_tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = tcp
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .await;
        }
    });
    let first = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", first.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = first.accept().await {
            let mut buf = vec![0u8; 8192];
            let _ = tcp.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 302 Found\r\nlocation: {other_url}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = tcp.write_all(answer.as_bytes()).await;
        }
    });
    let rest = RestClient::new(url.parse().unwrap()).unwrap();
    let err = rest
        .snapshot(&Secret::new(TOKEN))
        .await
        .expect_err("a redirect is not a snapshot");
    assert!(err.to_string().contains("302"), "{err}");
    assert!(
        seen.try_recv().is_err(),
        "the redirect was followed to the other server"
    );
}
