//! A real nginx (Debian package) as a WebSocket-aware load balancer in front of
//! gateway nodes, for one test: a free loopback port, its own config and temp
//! directory, killed (SIGKILL) and reaped on drop.
//!
//! Invariants:
//! - [`Nginx::start`] returns once nginx accepts connections; a missing `nginx`
//!   binary fails the test with the command that installs it;
//! - one process (`master_process off`), so the SIGKILL on drop leaves no worker
//!   behind;
//! - the proxied location forwards `Upgrade`/`Connection` (else the WebSocket
//!   upgrade never reaches a node) and moves a request to the next node when one
//!   cannot be reached (`proxy_next_upstream error timeout`).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::kill;

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn config(dir: &std::path::Path, port: u16, upstreams: &[SocketAddr]) -> String {
    let d = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|a| format!("    server {a} max_fails=1 fail_timeout=2s;\n"))
        .collect();
    format!(
        "user root;
master_process off;
worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream pulse {{
{servers}  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://pulse;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection \"upgrade\";
      proxy_set_header Host $host;
      proxy_read_timeout 1h;
      proxy_connect_timeout 2s;
      proxy_next_upstream error timeout;
    }}
  }}
}}
"
    )
}

impl Nginx {
    /// Start nginx balancing (round robin) over `upstreams`.
    pub fn start(upstreams: &[SocketAddr]) -> Nginx {
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir for nginx");
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free loopback port");
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, config(dir.path(), port, upstreams)).expect("write nginx.conf");
            let child = Command::new("nginx")
                .arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(dir.path())
                .args(["-g", "daemon off;"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start nginx ({e}): install it with `apt-get install nginx` \
                         (scripts/install-deps.sh does)"
                    )
                });
            let mut n = Nginx {
                port,
                dir,
                child: Some(child),
            };
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return n;
                }
                if let Some(Ok(Some(_))) = n.child.as_mut().map(Child::try_wait) {
                    break;
                }
                std::thread::sleep(crate::wait::POLL);
            }
            kill(&mut n.child);
        }
        panic!("nginx did not start on a free port (5 tries)");
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// nginx's error log (for failure messages).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
