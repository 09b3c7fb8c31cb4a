//! A tiny static file server for the built UI (`ui/dist`), so Chromium can load
//! the same UI the app embeds as a plain web page (the side by side).
//!
//! Invariants: listens on 127.0.0.1 only, on a port the OS picks; answers `GET`
//! and `HEAD` with files under its root and nothing else: a path with a `..`,
//! `.` or empty segment, a backslash, a NUL or a percent escape is refused (400)
//! rather than resolved, so nothing outside the root is ever read; `/` is
//! `index.html`. The query string is the page's (`?fake=…`) and is ignored here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::Response;

/// A running server; stops when dropped.
pub(super) struct StaticServer {
    /// `http://127.0.0.1:PORT`.
    pub(super) base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file under `root` that `path` (a URI path) names, or why not.
fn resolve(root: &Path, path: &str) -> Result<PathBuf, StatusCode> {
    let rel = path.strip_prefix('/').ok_or(StatusCode::BAD_REQUEST)?;
    if rel.is_empty() {
        return Ok(root.join("index.html"));
    }
    if rel.contains(['\\', '\0', '%']) {
        return Err(StatusCode::BAD_REQUEST);
    }
    let mut out = root.to_path_buf();
    for seg in rel.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(StatusCode::BAD_REQUEST);
        }
        out.push(seg);
    }
    Ok(out)
}

fn plain(status: StatusCode, text: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(text.to_owned()))
        .expect("a valid response")
}

async fn answer(root: &Path, method: &Method, uri: &Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    let file = match resolve(root, uri.path()) {
        Ok(f) => f,
        Err(s) => return plain(s, "bad path\n"),
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => Response::builder()
            .header(header::CONTENT_TYPE, content_type(&file))
            .header(header::CACHE_CONTROL, "no-store")
            .body(if method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(bytes)
            })
            .expect("a valid response"),
        Err(_) => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Serve `root` on 127.0.0.1:0 (on the current tokio runtime).
pub(super) async fn serve(root: &Path) -> anyhow::Result<StaticServer> {
    anyhow::ensure!(
        root.join("index.html").is_file(),
        "no index.html in {} (build the UI: `npm run build` in ui/)",
        root.display()
    );
    let root = root.canonicalize()?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri| {
        let root = root.clone();
        async move { answer(&root, &method, &uri).await }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(StaticServer {
        base,
        stop: Some(stop),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn site() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("dist");
        std::fs::create_dir_all(root.join("assets")).unwrap();
        std::fs::write(root.join("index.html"), "<!doctype html><p>ui</p>").unwrap();
        std::fs::write(root.join("assets/app.js"), "console.log(1)").unwrap();
        std::fs::write(t.path().join("secret.txt"), "outside the root").unwrap();
        t
    }

    #[tokio::test]
    async fn serves_files_under_its_root_with_their_types() {
        let t = site();
        let s = serve(&t.path().join("dist")).await.unwrap();
        assert!(s.base.starts_with("http://127.0.0.1:"));
        let http = reqwest::Client::new();
        let r = http
            .get(format!("{}/?fake=10000&rate=1000", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(r.text().await.unwrap(), "<!doctype html><p>ui</p>");
        let r = http
            .get(format!("{}/assets/app.js", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(r.text().await.unwrap(), "console.log(1)");
        let r = http
            .head(format!("{}/assets/app.js", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = http
            .get(format!("{}/assets/none.js", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let r = http
            .post(format!("{}/index.html", s.base))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
    }

    #[test]
    fn refuses_paths_that_leave_the_root() {
        let root = Path::new("/srv/dist");
        assert_eq!(
            resolve(root, "/assets/a.js").unwrap(),
            Path::new("/srv/dist/assets/a.js")
        );
        assert_eq!(
            resolve(root, "/").unwrap(),
            Path::new("/srv/dist/index.html")
        );
        for bad in [
            "/../secret.txt",
            "/assets/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/assets//a.js",
            "/./index.html",
            "/a\\..\\b",
            "/a\0b",
            "relative",
            "",
        ] {
            assert_eq!(
                resolve(root, bad).unwrap_err(),
                StatusCode::BAD_REQUEST,
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn garbage_requests_get_an_error_and_the_server_keeps_serving() {
        let t = site();
        let s = serve(&t.path().join("dist")).await.unwrap();
        let addr = s.base.trim_start_matches("http://").to_owned();
        for garbage in [
            &b"\x00\x01\x02 not http at all\r\n\r\n"[..],
            b"GET /../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"GET /%2e%2e/secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"GET\r\n\r\n",
        ] {
            let addr = addr.clone();
            let garbage = garbage.to_vec();
            let answer = tokio::task::spawn_blocking(move || {
                let mut c = std::net::TcpStream::connect(&addr).unwrap();
                c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                    .unwrap();
                c.write_all(&garbage).unwrap();
                let mut out = Vec::new();
                let _ = c.read_to_end(&mut out);
                String::from_utf8_lossy(&out).into_owned()
            })
            .await
            .unwrap();
            assert!(
                !answer.contains("outside the root"),
                "served a file outside the root: {answer}"
            );
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
                "not an error: {answer}"
            );
        }
        let r = reqwest::get(format!("{}/", s.base)).await.unwrap();
        assert_eq!(r.status(), 200);
    }

    #[tokio::test]
    async fn a_root_without_the_built_ui_is_a_clear_error() {
        let t = tempfile::tempdir().unwrap();
        let e = serve(t.path()).await.err().unwrap().to_string();
        assert!(e.contains("no index.html"), "{e}");
        assert!(e.contains("npm run build"), "{e}");
    }
}
