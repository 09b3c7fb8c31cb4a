//! The gateway as a service: `serve --config FILE` (flags win, unknown keys and garbage
//! refused), the users file managed by `pulse-gateway user`, and login only from it.

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pulse_testkit::gateway::SECRET;
use pulse_testkit::process::spawn_announced;
use serde_json::{json, Value};

fn bin() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_pulse-gateway"));
    c.env_remove("PULSE_JWT_SECRET")
        .env("PULSE_LOG", "warn")
        .kill_on_drop(true);
    c
}

/// `pulse-gateway user ARGS` with `stdin` as standard input: (status, stdout, stderr).
async fn user(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut child = bin()
        .arg("user")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A command that refuses its arguments exits without reading stdin: a broken
    // pipe here is that, not a failure (its status and stderr are checked).
    match tokio::io::AsyncWriteExt::write_all(&mut input, stdin.as_bytes()).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => panic!("writing stdin: {e}"),
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Start `serve` with `args`; the URL it announced.
async fn serve(args: &[&str]) -> (tokio::process::Child, String) {
    let mut cmd = bin();
    cmd.arg("serve").args(args).stderr(Stdio::inherit());
    let (child, line) = spawn_announced("pulse-gateway", &mut cmd, Duration::from_secs(30)).await;
    let url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

async fn serve_fails(args: &[&str]) -> (Option<i32>, String) {
    let out = bin()
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(out.stdout.is_empty(), "started: {:?}", out.stdout);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn login(url: &str, name: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/auth/login"))
        .json(&json!({"username": name, "password": password}))
        .send()
        .await
        .unwrap()
}

fn write(path: &Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_managed_on_the_command_line_and_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    let f = file.to_str().unwrap();

    let (code, _, err) = user(
        &["add", "ann", "--tenant", "acme", "--users-file", f],
        "hunter2\n",
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("added user `ann`"), "{err}");
    let (code, _, err) = user(
        &[
            "add",
            "svc",
            "--tenant",
            "acme",
            "--role",
            "publisher",
            "--users-file",
            f,
        ],
        "s3rvice",
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("s3rvice"),
        "{text}"
    );
    assert_eq!(text.matches("$argon2id$").count(), 2, "{text}");

    let (code, out, _) = user(&["list", "--users-file", f], "").await;
    assert_eq!(code, Some(0));
    assert_eq!(out, "ann\tacme\tviewer\nsvc\tacme\tpublisher\n");

    // Refusals: duplicate, empty password, bad name, unknown user, no file named.
    let (code, _, err) = user(&["add", "ann", "--tenant", "x", "--users-file", f], "pw\n").await;
    assert_eq!(code, Some(1));
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = user(&["add", "bob", "--tenant", "x", "--users-file", f], "\n").await;
    assert_eq!(code, Some(2));
    assert!(err.contains("password must not be empty"), "{err}");
    let (code, _, err) = user(&["add", "b b", "--tenant", "x", "--users-file", f], "pw\n").await;
    assert_eq!(code, Some(2));
    assert!(err.contains("not allowed"), "{err}");
    let (code, _, err) = user(&["remove", "zed", "--users-file", f], "").await;
    assert_eq!(code, Some(1));
    assert!(err.contains("no user `zed`"), "{err}");
    let (code, _, err) = user(&["list"], "").await;
    assert_eq!(code, Some(2));
    assert!(err.contains("--users-file"), "{err}");
    // No password on the command line at all.
    let (code, _, _) = user(
        &[
            "add",
            "x",
            "--tenant",
            "t",
            "--password",
            "pw",
            "--users-file",
            f,
        ],
        "",
    )
    .await;
    assert_eq!(code, Some(2));

    let (code, _, err) = user(&["remove", "svc", "--users-file", f], "").await;
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = user(&["list", "--users-file", f], "").await;
    assert_eq!(out, "ann\tacme\tviewer\n");

    // A garbage users file: refused by `user` and by `serve`, and left as it was.
    let junk = dir.path().join("junk.toml");
    write(&junk, "[[user]]\nname = \"ann\"\npassword = \"plain\"\n");
    let before = std::fs::read(&junk).unwrap();
    let (code, _, err) = user(
        &[
            "add",
            "x",
            "--tenant",
            "t",
            "--users-file",
            junk.to_str().unwrap(),
        ],
        "pw\n",
    )
    .await;
    assert_eq!(code, Some(1));
    assert!(
        err.contains("junk.toml") && err.contains("password"),
        "{err}"
    );
    assert_eq!(std::fs::read(&junk).unwrap(), before, "nothing lost");
    let (code, err) = serve_fails(&[
        "--jwt-secret",
        SECRET,
        "--addr",
        "127.0.0.1:0",
        "--users-file",
        junk.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, Some(1));
    assert!(err.contains("junk.toml"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_every_option_from_the_config_file_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let secret = dir.path().join("jwt-secret");
    write(&secret, "  file-secret-0123456789abcdef-0123456789\n");
    let db = dir.path().join("gw.db");
    let (code, _, err) = user(
        &[
            "add",
            "ann",
            "--tenant",
            "acme",
            "--users-file",
            users.to_str().unwrap(),
        ],
        "hunter2\n",
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let config = dir.path().join("gateway.toml");
    write(
        &config,
        &format!(
            "addr = \"127.0.0.1:0\"\nstore = \"sqlite:{}\"\njwt_secret_file = \"{}\"\n\
             users_file = \"{}\"\nretain = 50\nping_interval = \"20s\"\nping_timeout = \"5s\"\n\
             access_ttl = \"2m\"\nrefresh_ttl = \"1d\"\nclient_queue = 100\nnode_id = \"n1\"\n\
             demo = false\ndemo_speed = 2.0\ndemo_seed = 7\n",
            db.display(),
            secret.display(),
            users.display()
        ),
    );
    let cfg = config.to_str().unwrap();
    let (mut child, url) = serve(&["--config", cfg]).await;
    assert!(db.exists(), "the store of the file is used");
    let r = login(&url, "ann", "hunter2").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["expires_in"], 120, "access_ttl from the file");
    let claims = pulse_gateway::auth::verify(
        "file-secret-0123456789abcdef-0123456789",
        body["access_token"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(claims.tenant, "acme");
    assert_eq!(login(&url, "ann", "wrong").await.status(), 401);
    assert_eq!(
        login(&url, "demo", "demo").await.status(),
        401,
        "no demo user without demo"
    );

    // A user added while it runs can log in: the file is re-read when it changes.
    let (code, _, err) = user(
        &[
            "add",
            "bob",
            "--tenant",
            "beta",
            "--users-file",
            users.to_str().unwrap(),
        ],
        "pw-b\n",
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let r = login(&url, "bob", "pw-b").await;
    assert_eq!(r.status(), 200);
    child.kill().await.unwrap();

    // Flags win over the file.
    let (mut child, url) = serve(&[
        "--config",
        cfg,
        "--access-ttl",
        "3m",
        "--jwt-secret",
        "flag-secret-0123456789abcdef-0123456789",
    ])
    .await;
    let body: Value = login(&url, "ann", "hunter2").await.json().await.unwrap();
    assert_eq!(body["expires_in"], 180);
    assert!(pulse_gateway::auth::verify(
        "flag-secret-0123456789abcdef-0123456789",
        body["access_token"].as_str().unwrap()
    )
    .is_ok());
    child.kill().await.unwrap();

    // The demo with no config at all still works, with its demo user.
    let (mut child, url) = serve(&["--demo", "--addr", "127.0.0.1:0"]).await;
    assert_eq!(login(&url, "demo", "demo").await.status(), 200);
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    let cfg = config.to_str().unwrap();
    for (text, needle) in [
        ("adress = \"127.0.0.1:0\"\n", "unknown field `adress`"),
        ("jwt_secret = \"s\"\n", "jwt_secret_file"),
        ("retain = \"lots\"\n", "retain"),
        ("ping_interval = \"soon\"\n", "ping_interval"),
        ("store = \"mysql://x\"\n", "store"),
        ("addr = \"nowhere\"\n", "addr"),
        ("garbage = [\n", "line 1"),
        ("\u{0}\u{1}\u{2}", "gateway.toml"),
        (
            "jwt_secret_file = \"/nonexistent/secret\"\n",
            "/nonexistent/secret",
        ),
        ("demo = true\nretain = 0\n", "retain"),
    ] {
        write(&config, text);
        let (code, err) = serve_fails(&["--config", cfg]).await;
        assert_eq!(code, Some(2), "{text:?}: {err}");
        assert!(err.contains(needle), "{text:?}: {err}");
    }
    let (code, err) = serve_fails(&["--config", "/nonexistent/gateway.toml"]).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent/gateway.toml"), "{err}");
    // A JWT secret under 32 bytes is refused, from a file, a flag or the environment,
    // and the message does not repeat it.
    let short = dir.path().join("short-secret");
    write(&short, "only-20-bytes-secret\n");
    write(
        &config,
        &format!("jwt_secret_file = \"{}\"\n", short.display()),
    );
    let (code, err) = serve_fails(&["--config", cfg]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("short-secret") && err.contains("20 bytes") && err.contains("at least 32"),
        "{err}"
    );
    assert!(!err.contains("only-20-bytes-secret"), "{err}");
    let (code, err) = serve_fails(&["--jwt-secret", "s3cret", "--addr", "127.0.0.1:0"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--jwt-secret") && err.contains("at least 32"),
        "{err}"
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pulse-gateway"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("PULSE_JWT_SECRET", "env-secret-of-25-bytes!!!")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("PULSE_JWT_SECRET") && err.contains("25 bytes"),
        "{err}"
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pulse-gateway"))
        .args(["mint", "--secret", "k3y", "--tenant", "acme", "--sub", "x"])
        .env_remove("PULSE_JWT_SECRET")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no token from a short secret");
    // Embedders get the same rule.
    let weak = pulse_gateway::Gateway::start(pulse_gateway::Config {
        jwt_secret: Some("short".into()),
        ..pulse_gateway::Config::default()
    })
    .await
    .unwrap_err();
    assert!(weak.to_string().contains("at least 32"), "{weak}");

    // The command-line users of old are gone.
    let (code, err) = serve_fails(&["--demo", "--user", "ann:pw:acme"]).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("--user"), "{err}");
}
