//! `vigil probe URL` against local listeners on 127.0.0.1: a 200 answer
//! exits 0, a 503 answer, no listener, a listener that never answers and
//! one that answers something other than HTTP each exit non-zero with a
//! message saying which.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Serves one connection on a fresh loopback port: reads the request
/// head, sends its request line back on the channel, then writes `answer`
/// (or, with `None`, holds the connection open without answering until
/// the client has gone). Returns the port and the channel.
fn serve_once(answer: Option<&'static str>) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        let _ = reader.read_line(&mut request_line);
        // The rest of the head, up to the blank line.
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
            line.clear();
        }
        let _ = tx.send(request_line.trim_end().to_owned());
        let mut stream = reader.into_inner();
        match answer {
            Some(text) => {
                let _ = stream.write_all(text.as_bytes());
            }
            // Silent: wait until the client closes its side.
            None => {
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(&mut stream, &mut sink);
            }
        }
    });
    (port, rx)
}

fn probe(args: &[&str]) -> (i32, String, String) {
    let mut argv = vec!["probe"];
    argv.extend_from_slice(args);
    common::run_vigil(&argv, None).expect("vigil runs")
}

#[test]
fn a_2xx_answer_exits_0_and_the_request_names_the_path() {
    let (port, requests) = serve_once(Some("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"));
    let url = format!("http://127.0.0.1:{port}/readyz");
    let (code, out, err) = probe(&[&url]);
    assert_eq!(code, 0, "stdout {out} stderr {err}");
    assert!(out.contains("200"), "{out}");
    let request = requests
        .recv_timeout(Duration::from_secs(10))
        .expect("the listener saw a request");
    assert_eq!(request, "GET /readyz HTTP/1.1");
}

#[test]
fn a_503_answer_fails_saying_the_status() {
    let (port, _requests) = serve_once(Some(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
    ));
    let (code, _, err) = probe(&[&format!("http://127.0.0.1:{port}/readyz")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("503 Service Unavailable"), "{err}");
}

#[test]
fn no_listener_fails_saying_it_cannot_connect() {
    // A port that was free a moment ago and has no listener now.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let (code, _, err) = probe(&[&format!("http://127.0.0.1:{port}/healthz")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn a_silent_listener_fails_after_the_timeout() {
    let (port, requests) = serve_once(None);
    let start = Instant::now();
    let (code, _, err) = probe(&[
        "--timeout",
        "0.5",
        &format!("http://127.0.0.1:{port}/readyz"),
    ]);
    let took = start.elapsed();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(requests.recv_timeout(Duration::from_secs(10)).is_ok());
}

#[test]
fn a_non_http_answer_fails_saying_so() {
    let (port, _requests) = serve_once(Some("SSH-2.0-OpenSSH\r\n"));
    let (code, _, err) = probe(&[&format!("http://127.0.0.1:{port}/")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not an HTTP answer"), "{err}");
}

#[test]
fn another_scheme_is_refused_before_connecting() {
    let (code, _, err) = probe(&["ftp://127.0.0.1:1/"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("only http:// and https://"), "{err}");
}
