#![allow(clippy::disallowed_methods)] // polling a child process needs short sleeps
//! The built binary: `serve` as a child process on an ephemeral port, and the client verbs
//! against it, exactly as a person would run them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_agentgate");

struct Daemon {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
    log: PathBuf,
    /// Its PostgreSQL database, when the run uses one.
    _db: Option<crate::pg::TestDb>,
}

impl Daemon {
    fn start(extra: &[&str]) -> Daemon {
        Daemon::start_on("127.0.0.1:0", extra)
    }

    fn start_on(listen: &str, extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let log = dir.path().join("serve.log");
        let db = crate::pg::TestDb::if_selected();
        let database = db
            .as_ref()
            .map(|db| vec!["--database".to_owned(), db.url()]);
        let child = Command::new(BIN)
            .args(["serve", "--listen", listen, "--ready-file"])
            .arg(&ready)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(database.unwrap_or_default())
            .args(extra)
            .env_remove("AGENTGATE_TOKEN")
            .env("XDG_CONFIG_HOME", dir.path().join("no-config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let addr = wait_for_file(&ready, &log);
        Daemon {
            child,
            url: format!("http://{addr}"),
            dir,
            log,
            _db: db,
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs a client verb with this daemon's URL and data dir (so the admin token is found).
    fn cli(&self, args: &[&str]) -> Output {
        self.cli_with(args, None)
    }

    fn cli_with(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--url")
            .arg(&self.url)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env_remove("AGENTGATE_TOKEN")
            .env("XDG_CONFIG_HOME", self.dir.path().join("no-config"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        run(cmd, stdin)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Output {
    use std::io::Write;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn wait_for_file(path: &Path, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.trim().is_empty()
        {
            return text.trim().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "daemon not ready: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    o
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn first_start_creates_a_private_owner_token_and_logs_only_its_path() {
    let daemon = Daemon::start(&[]);
    let data = daemon.data_dir();
    let token_file = data.join("admin.token");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&token_file), 0o600);
    if daemon._db.is_none() {
        assert_eq!(mode(&data.join("agentgate.db")), 0o600);
    }
    let secret = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(secret.starts_with("agt_"));
    let log = daemon.log();
    assert!(log.contains(&token_file.display().to_string()), "{log}");
    assert!(log.contains(&daemon.url), "the URL it serves: {log}");
    assert!(!log.contains(&secret), "the secret is never logged");

    let me: Value = serde_json::from_slice(&ok(daemon.cli(&["whoami", "--json"])).stdout).unwrap();
    assert_eq!(me["name"], "owner");
    assert_eq!(me["scopes"], serde_json::json!(["admin"]));
    assert_eq!(me["expires_at"], Value::Null);
}

#[test]
fn tokens_from_the_cli_show_their_secret_once_and_revoke_by_name() {
    let daemon = Daemon::start(&[]);
    let created = ok(daemon.cli(&[
        "token",
        "create",
        "--name",
        "ci",
        "--scope",
        "read,request",
        "--expires",
        "12h",
        "--json",
    ]));
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let secret = created["token"].as_str().unwrap().to_owned();
    assert_eq!(created["scopes"], serde_json::json!(["read", "request"]));

    // Human output prints the secret alone on stdout, with a note on stderr.
    let human = ok(daemon.cli(&["token", "create", "--name", "laptop", "--scope", "approve"]));
    let laptop_secret = stdout(&human).trim().to_owned();
    assert!(
        laptop_secret.starts_with("agt_") && !laptop_secret.contains(' '),
        "{laptop_secret}"
    );
    assert!(stderr(&human).contains("shown only once"));

    let list = ok(daemon.cli(&["token", "list"]));
    let text = stdout(&list);
    assert!(
        text.contains("ci") && text.contains("laptop") && text.contains("owner"),
        "{text}"
    );
    assert!(text.contains("read,request"));
    assert!(
        !text.contains(&secret) && !text.contains(&laptop_secret),
        "never a secret"
    );
    let list_json = ok(daemon.cli(&["--json", "token", "list"]));
    assert!(!stdout(&list_json).contains(&secret));
    let parsed: Value = serde_json::from_slice(&list_json.stdout).unwrap();
    assert_eq!(parsed["tokens"].as_array().unwrap().len(), 3);

    // Global options after the verb; the token from the environment.
    let me = ok(daemon.cli(&["whoami", "--json", "--token", &secret]));
    let me: Value = serde_json::from_slice(&me.stdout).unwrap();
    assert_eq!(me["name"], "ci");
    let mut cmd = Command::new(BIN);
    cmd.args(["whoami", "--url", &daemon.url])
        .env("AGENTGATE_TOKEN", &laptop_secret)
        .env("XDG_CONFIG_HOME", daemon.dir.path().join("no-config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = ok(run(cmd, None));
    assert!(
        stdout(&out).contains("laptop") && stdout(&out).contains("approve"),
        "{}",
        stdout(&out)
    );

    // A read token cannot create tokens: the daemon's error, clearly, non-zero.
    let denied = daemon.cli(&[
        "token", "create", "--name", "x", "--scope", "read", "--token", &secret,
    ]);
    assert!(!denied.status.success());
    assert!(
        stderr(&denied).contains("insufficient_scope"),
        "{}",
        stderr(&denied)
    );
    let denied_json = daemon.cli(&["token", "revoke", "ci", "--token", &secret, "--json"]);
    assert!(!denied_json.status.success());
    let err: Value = serde_json::from_str(stderr(&denied_json).trim()).unwrap();
    assert_eq!(err["error"], "insufficient_scope");
    assert_eq!(err["required"], "admin");

    ok(daemon.cli(&["token", "revoke", "ci"]));
    let after = daemon.cli(&["whoami", "--token", &secret]);
    assert!(!after.status.success());
    assert!(stderr(&after).contains("revoked"), "{}", stderr(&after));
    let again = daemon.cli(&["token", "revoke", "ci"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("no live token is named `ci`"),
        "{}",
        stderr(&again)
    );

    // The request log names tokens, never their secrets.
    let log = daemon.log();
    assert!(
        log.contains("token=\"laptop\"") || log.contains("token=laptop"),
        "{log}"
    );
    for s in [&secret, &laptop_secret] {
        assert!(!log.contains(s.as_str()), "secret in the log");
    }
}

#[test]
fn bad_cli_input_is_refused_before_anything_is_sent() {
    let daemon = Daemon::start(&[]);
    let cases: [(&[&str], &str); 5] = [
        (
            &["token", "create", "--name", "x", "--scope", "root"],
            "valid scopes are: admin, write, read, approve, execute, request",
        ),
        (
            &[
                "token",
                "create",
                "--name",
                "x",
                "--scope",
                "read",
                "--expires",
                "soon",
            ],
            "invalid expiry `soon`",
        ),
        (
            &["token", "create", "--name", "", "--scope", "read"],
            "a token name cannot be empty",
        ),
        (&["token", "create", "--name", "x"], "--scope"),
        (&["token", "frobnicate"], "unrecognized subcommand"),
    ];
    for (args, expected) in cases {
        let out = daemon.cli(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let list = ok(daemon.cli(&["token", "list", "--json"]));
    let parsed: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(
        parsed["tokens"].as_array().unwrap().len(),
        1,
        "only the owner token"
    );
}

#[test]
fn passphrase_set_reads_stdin_and_the_daemon_validates_it() {
    let daemon = Daemon::start(&[]);
    let out = ok(daemon.cli_with(
        &["passphrase", "set", "--stdin"],
        Some("correct horse battery\n"),
    ));
    assert!(stdout(&out).contains("owner passphrase set"));
    let short = daemon.cli_with(&["passphrase", "set", "--stdin"], Some("short\n"));
    assert!(!short.status.success());
    assert!(stderr(&short).contains("12 to 1024"), "{}", stderr(&short));
    let common = daemon.cli_with(&["passphrase", "set", "--stdin"], Some("Password 1 2 3\n"));
    assert!(!common.status.success());
    assert!(
        stderr(&common).contains("too easy to guess"),
        "{}",
        stderr(&common)
    );
    // No terminal and no --stdin: say how, do not hang.
    let no_tty = daemon.cli(&["passphrase", "set"]);
    assert!(!no_tty.status.success());
    assert!(stderr(&no_tty).contains("--stdin"), "{}", stderr(&no_tty));
    assert!(!daemon.log().contains("correct horse"));
}

#[test]
fn sigterm_stops_the_daemon_gracefully() {
    let mut daemon = Daemon::start(&[]);
    ok(daemon.cli(&["whoami"]));
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}: {}", daemon.log());
    assert!(daemon.log().contains("stopped"));
    // And the CLI then says the daemon is not running, with how to start it.
    let out = daemon.cli(&["whoami"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("not running") && err.contains("agentgate serve"),
        "{err}"
    );
}

#[test]
fn the_cli_explains_a_missing_daemon_and_a_missing_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["whoami", "--url", "http://127.0.0.1:9", "--token", "agt_x"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run(cmd, None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not running at http://127.0.0.1:9"),
        "{}",
        stderr(&out)
    );

    let mut cmd = Command::new(BIN);
    cmd.args(["token", "list", "--url", "http://127.0.0.1:9", "--data-dir"])
        .arg(dir.path())
        .env_remove("AGENTGATE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run(cmd, None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no token"), "{}", stderr(&out));
}

/// Runs `serve` with `args`, expecting it to refuse before writing anything; returns its stderr.
pub(crate) fn serve_fails(args: &[&str], config: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("XDG_CONFIG_HOME", dir.path().join("cfg"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(text) = config {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        cmd.arg("--config").arg(&path);
    }
    let out = run(cmd, None);
    assert!(!out.status.success(), "serve should refuse {args:?}");
    assert!(
        !dir.path().join("data").join("admin.token").exists(),
        "nothing written"
    );
    stderr(&out)
}

#[test]
fn serve_refuses_bad_configuration_with_a_clear_reason() {
    let err = serve_fails(&["--listen", "0.0.0.0:0"], None);
    assert!(
        err.contains("not a loopback address") && err.contains("--allow-remote"),
        "{err}"
    );

    let err = serve_fails(&[], Some("listen = \"127.0.0.1:0\"\nlisten_port = 3\n"));
    assert!(
        err.contains("config.toml, line 2, column 1: unknown field `listen_port`"),
        "{err}"
    );
    let err = serve_fails(&[], Some("listen = [\n"));
    assert!(err.contains("config.toml, line"), "{err}");
    let err = serve_fails(&[], Some("allow_remote = \"yes\"\n"));
    assert!(
        err.contains("line 1") && err.contains("invalid type"),
        "{err}"
    );

    let err = serve_fails(&["--listen", "not-an-address"], None);
    assert!(err.contains("invalid listen address"), "{err}");
    for (url, why) in [
        ("mysql://u:secretpw@h/db", "neither sqlite nor postgres"),
        ("postgres://u:secretpw@h:notaport/db", "port"),
        ("postgres://u:secretpw@/db", "names no host"),
    ] {
        let err = serve_fails(&["--listen", "127.0.0.1:0", "--database", url], None);
        assert!(
            err.contains("unsupported database URL") && err.contains(why),
            "{url}: {err}"
        );
        assert!(!err.contains("secretpw"), "{err}");
    }
    let err = serve_fails(&["--config", "/nonexistent/agentgate.toml"], None);
    assert!(
        err.contains("cannot read config file /nonexistent/agentgate.toml"),
        "{err}"
    );
}

#[test]
fn allow_remote_starts_with_a_tls_warning_and_a_config_file_is_honoured() {
    let daemon = Daemon::start_on("0.0.0.0:0", &["--allow-remote"]);
    assert!(daemon.log().contains("TLS"), "{}", daemon.log());
    drop(daemon);

    // A config file supplies the listen address; the CLI finds the URL from it too.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n",
            dir.path().join("d").display()
        ),
    )
    .unwrap();
    let ready = dir.path().join("ready");
    let log = dir.path().join("log");
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .arg("--ready-file")
        .arg(&ready)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = wait_for_file(&ready, &log);
    assert_eq!(addr, format!("127.0.0.1:{port}"));
    let mut cmd = Command::new(BIN);
    cmd.args(["whoami", "--json", "--config"])
        .arg(&cfg)
        .env_remove("AGENTGATE_TOKEN")
        .env_remove("AGENTGATE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run(cmd, None);
    let _ = child.kill();
    let _ = child.wait();
    let out = ok(out);
    assert!(stdout(&out).contains("\"owner\""));
}

#[test]
fn request_exit_codes_and_answering_from_the_cli() {
    let daemon = Daemon::start(&[]);
    let agent =
        stdout(&ok(daemon.cli(&[
            "token", "create", "--name", "agent", "--scope", "request",
        ])))
        .trim()
        .to_owned();
    ok(daemon.cli(&[
        "rules",
        "add",
        "--action",
        "allow",
        "--kind",
        "shell",
        "--pattern",
        "git *",
    ]));
    ok(daemon.cli(&[
        "rules",
        "add",
        "--action",
        "deny",
        "--kind",
        "shell",
        "--pattern",
        "rm *",
    ]));
    let code = |args: &[&str]| {
        let mut full = vec!["request", "--token", agent.as_str()];
        full.extend_from_slice(args);
        let out = daemon.cli(&full);
        (out.status.code(), stdout(&out), stderr(&out))
    };
    // File rules can be limited to operations.
    let reads = stdout(&ok(daemon.cli(&[
        "rules",
        "add",
        "--action",
        "allow",
        "--kind",
        "file",
        "--pattern",
        "/srv/**",
        "--operation",
        "read",
    ])));
    assert!(reads.contains("allow file `/srv/**`"), "{reads}");
    assert_eq!(
        code(&["--kind", "file", "--operation", "read", "--path", "/srv/a"]).0,
        Some(0)
    );
    assert_eq!(
        code(&[
            "--kind",
            "file",
            "--operation",
            "delete",
            "--path",
            "/srv/a"
        ])
        .0,
        Some(4),
        "a read rule does not cover delete"
    );
    let bad = daemon.cli(&[
        "rules",
        "add",
        "--action",
        "allow",
        "--kind",
        "file",
        "--pattern",
        "/x",
        "--operation",
        "chmod",
    ]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("unknown variant `chmod`"),
        "{}",
        stderr(&bad)
    );
    assert_eq!(
        code(&["--kind", "shell", "--command", "git status"]).0,
        Some(0)
    );
    let (c, out, _) = code(&["--kind", "shell", "--command", "git status && rm -rf /"]);
    assert_eq!(c, Some(1), "{out}");
    assert!(out.contains("denied"));
    assert_eq!(
        code(&[
            "--kind",
            "shell",
            "--command",
            "make",
            "--timeout",
            "1",
            "--wait"
        ])
        .0,
        Some(2)
    );
    let (c, _, err) = code(&["--kind", "telepathy", "--command", "x"]);
    assert_eq!(c, Some(3));
    assert!(err.contains("expected one of `file`, `shell`"), "{err}");
    let (c, out, _) = code(&[
        "--kind",
        "shell",
        "--command",
        "make install",
        "--reason",
        "needs it",
    ]);
    assert_eq!(c, Some(4), "pending without --wait");
    let id = out.split_whitespace().next().unwrap().to_owned();

    let pending = stdout(&ok(daemon.cli(&["pending"])));
    assert!(
        pending.contains(&id) && pending.contains("make install") && pending.contains("needs it"),
        "{pending}"
    );
    // Text an agent wrote cannot drive the owner's terminal: escapes are shown, not obeyed.
    let (c, _, _) = code(&[
        "--kind",
        "shell",
        "--command",
        "make \u{202e}x",
        "--reason",
        "\x1b[2J\x1b[HAll clear\nnothing is pending\x1b]0;pwned\x07",
    ]);
    assert_eq!(c, Some(4));
    let pending = stdout(&ok(daemon.cli(&["pending"])));
    assert!(
        !pending.contains('\x1b') && !pending.contains('\u{202e}'),
        "{pending:?}"
    );
    assert!(pending.contains("\\x1b[2J"), "{pending}");
    assert!(
        !pending.lines().any(|l| l.trim() == "nothing is pending"),
        "an agent cannot print a line of its own: {pending}"
    );
    // A waiting agent is released by a CLI approval.
    let waiter = Command::new(BIN)
        .args([
            "request",
            "--kind",
            "shell",
            "--command",
            "make deploy",
            "--wait",
            "--json",
            "--url",
            &daemon.url,
        ])
        .env("AGENTGATE_TOKEN", &agent)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting_id = loop {
        let list: Value =
            serde_json::from_slice(&ok(daemon.cli(&["pending", "--json"])).stdout).unwrap();
        let found = list["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["summary"] == "make deploy")
            .map(|p| p["id"].as_str().unwrap().to_owned());
        if let Some(found) = found {
            break found;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let approved = stdout(&ok(daemon.cli(&["approve", &waiting_id, "--always"])));
    assert!(
        approved.contains("allowed by owner") && approved.contains("remembered"),
        "{approved}"
    );
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "allowed");
    let denied = stdout(&ok(daemon.cli(&["deny", &id, "--message", "not today"])));
    assert!(denied.contains("denied by owner: not today"), "{denied}");
    let again = daemon.cli(&["deny", &id]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already decided by owner"),
        "{}",
        stderr(&again)
    );

    let explain = stdout(&ok(daemon.cli(&[
        "policy",
        "explain",
        "--kind",
        "shell",
        "--command",
        "git push; rm -rf /",
    ])));
    assert!(
        explain.contains("decision: deny") && explain.contains("<- decides"),
        "{explain}"
    );
    // Each part with its assignments and redirections, and why a part is opaque.
    let explain = stdout(&ok(daemon.cli(&[
        "policy",
        "explain",
        "--kind",
        "shell",
        "--command",
        "PATH=/tmp/e git status $x > out",
    ])));
    for shown in [
        "assignments: PATH=/tmp/e",
        "redirections: >out",
        "opaque, no allow rule covers it: the value of `$x` is not known",
        "part `> out`",
    ] {
        assert!(explain.contains(shown), "{shown} in {explain}");
    }
    let rules = stdout(&ok(daemon.cli(&["rules", "list"])));
    assert!(
        rules.contains("`git *`") && !rules.contains("`{make deploy}`"),
        "{rules}"
    );
    assert!(
        rules.contains("allow shell `make deploy`"),
        "the narrow rule: {rules}"
    );

    // The audit chain verifies, and an edited row is named.
    let verify = stdout(&ok(daemon.cli(&["audit", "verify"])));
    assert!(verify.contains("audit log intact"), "{verify}");
    let log = stdout(&ok(daemon.cli(&["audit"])));
    assert!(
        log.contains("permission.decided") && log.contains("rule.created"),
        "{log}"
    );
    let db = daemon.data_dir().join("agentgate.db");
    let edited = Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE audit SET data = replace(data, 'not today', 'fine') WHERE data LIKE '%not today%';")
        .status();
    // CI installs sqlite3; without it the integration test `the_audit_chain_verifies…` covers
    // the same edit through SQL.
    if edited.is_ok_and(|s| s.success()) {
        let out = daemon.cli(&["audit", "verify"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stdout(&out).contains("BROKEN at entry") && stdout(&out).contains("altered"),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn pending_watch_and_audit_follow_print_new_events_as_they_happen() {
    use std::io::{BufRead, BufReader};
    let daemon = Daemon::start(&[]);
    let agent =
        stdout(&ok(daemon.cli(&[
            "token", "create", "--name", "agent", "--scope", "request",
        ])))
        .trim()
        .to_owned();
    let follow = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--url")
            .arg(&daemon.url)
            .arg("--data-dir")
            .arg(daemon.data_dir())
            .env_remove("AGENTGATE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Something already pending before anyone watches.
    let mut cmd = Command::new(BIN);
    cmd.args([
        "request",
        "--kind",
        "shell",
        "--command",
        "make watched",
        "--url",
        &daemon.url,
    ])
    .env("AGENTGATE_TOKEN", &agent)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = run(cmd, None);
    assert_eq!(out.status.code(), Some(4));
    let id = stdout(&out).split_whitespace().next().unwrap().to_owned();

    let mut audit = follow(&["audit", "--follow", "--json"]);
    let mut watch = follow(&["pending", "--watch"]);
    let mut audit_lines = BufReader::new(audit.stdout.take().unwrap()).lines();
    let mut watch_lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    // Creating the agent's token was audited first; the request comes after it.
    let entry: Value = loop {
        let entry: Value = serde_json::from_str(&audit_lines.next().unwrap().unwrap()).unwrap();
        if entry["event"] != "token.created" {
            break entry;
        }
    };
    assert_eq!(entry["event"], "permission.created");
    assert_eq!(entry["subject"], id.as_str());
    let line = watch_lines.next().unwrap().unwrap();
    assert!(
        line.starts_with(&id) && line.contains("make watched"),
        "listed first: {line}"
    );
    // Then what happens next arrives live on both.
    ok(daemon.cli(&["deny", &id]));
    let entry: Value = serde_json::from_str(&audit_lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(entry["event"], "permission.decided");
    assert_eq!(entry["subject"], id.as_str());
    let line = watch_lines.next().unwrap().unwrap();
    assert_eq!(line, format!("- {id} denied"));
    let out = run_request(&daemon, &agent, "make second");
    let line = watch_lines.next().unwrap().unwrap();
    assert!(line.starts_with(&format!("+ {out} make second")), "{line}");
    let _ = audit.kill();
    let _ = watch.kill();
    let _ = audit.wait();
    let _ = watch.wait();
}

fn run_request(daemon: &Daemon, token: &str, command: &str) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "request",
        "--kind",
        "shell",
        "--command",
        command,
        "--url",
        &daemon.url,
    ])
    .env("AGENTGATE_TOKEN", token)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = run(cmd, None);
    stdout(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_clients_and_remembered_consent_are_listed_and_revoked_from_the_cli() {
    let daemon = Daemon::start(&[]);
    ok(daemon.cli_with(
        &["passphrase", "set", "--stdin"],
        Some("correct horse battery\n"),
    ));
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let reg: serde_json::Value = http
        .post(format!("{}/register", daemon.url))
        .json(
            &serde_json::json!({"redirect_uris": ["http://127.0.0.1:9/cb"],
            "token_endpoint_auth_method": "none", "client_name": "CLI Listed"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client = reg["client_id"].as_str().unwrap().to_owned();
    let page = http
        .get(format!(
            "{}/authorize?response_type=code&client_id={client}&code_challenge=\
             E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            daemon.url
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (authz, csrf) = crate::oauth::form_fields(&page);
    let answer = http
        .post(format!("{}/authorize", daemon.url))
        .header("origin", &daemon.url)
        .form(&[
            ("authz", authz),
            ("csrf", csrf),
            ("passphrase", "correct horse battery".to_owned()),
            ("decision", "approve".to_owned()),
            ("remember", "yes".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);

    let clients = stdout(&ok(daemon.cli(&["oauth", "clients"])));
    assert!(
        clients.contains(&client) && clients.contains("CLI Listed"),
        "{clients}"
    );
    assert!(clients.contains("http://127.0.0.1:9/cb"), "{clients}");
    let grants = stdout(&ok(daemon.cli(&["oauth", "grants"])));
    assert!(
        grants.contains(&client) && grants.contains("scope: request"),
        "{grants}"
    );
    let grant = grants.split_whitespace().next().unwrap().to_owned();
    assert!(grant.starts_with("grt_"), "{grants}");
    let revoked = stdout(&ok(daemon.cli(&["oauth", "grants", "revoke", &grant])));
    assert!(revoked.contains("consent page again"), "{revoked}");
    assert!(stdout(&ok(daemon.cli(&["oauth", "grants"]))).contains("no remembered consent"));
    // Unknown ids: a clear message and a non-zero exit.
    let bad = daemon.cli(&["oauth", "grants", "revoke", "grt_0000000000000000"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("no live grant"), "{}", stderr(&bad));
    let deleted = stdout(&ok(daemon.cli(&["oauth", "clients", "rm", &client])));
    assert!(deleted.contains(&format!("deleted {client}")), "{deleted}");
    assert!(stdout(&ok(daemon.cli(&["oauth", "clients"]))).contains("no registered clients"));
    let bad = daemon.cli(&["oauth", "clients", "rm", &client]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("no live client"), "{}", stderr(&bad));
}

#[test]
fn the_command_hook_blocks_on_every_failure_with_a_reason() {
    let daemon = Daemon::start(&[]);
    let event = r#"{"session_id":"s","cwd":"/tmp","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"}}"#;
    let token = daemon.dir.path().join("hook.token");
    let created = daemon.cli(&["token", "create", "--name", "hook", "--scope", "request"]);
    std::fs::write(&token, stdout(&created).trim()).unwrap();
    let token_arg = token.display().to_string();
    let hook = |args: &[&str], input: &str| {
        let mut all = vec!["hook"];
        all.extend_from_slice(args);
        daemon.cli_with(&all, Some(input))
    };

    // Bad input: blocked (exit 2), the reason on stderr for the model, nothing on stdout.
    for (input, words) in [
        ("", "empty"),
        ("{\"hook_event_name\":\"PreToolUse\"", "not valid JSON"),
        (
            r#"{"hook_event_name":"SessionStart","tool_name":"x","tool_input":{}}"#,
            "not `SessionStart`",
        ),
    ] {
        let out = hook(&["claude-code", "--token-file", &token_arg], input);
        assert_eq!(out.status.code(), Some(2), "{input}");
        assert!(stderr(&out).contains(words), "{input}: {}", stderr(&out));
        assert_eq!(stdout(&out), "");
    }
    // A token file that is missing, or a token the daemon refuses.
    let out = hook(&["codex", "--token-file", "/nonexistent/t"], event);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read the token file"),
        "{}",
        stderr(&out)
    );
    let bad = daemon.dir.path().join("bad.token");
    std::fs::write(&bad, "agt_notarealtoken").unwrap();
    let out = hook(
        &["claude-code", "--token-file", &bad.display().to_string()],
        event,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));

    // Nobody answers within the hook's timeout: denied as timed out, recorded as timeout.
    let out = hook(
        &["claude-code", "--token-file", &token_arg, "--timeout", "1"],
        event,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let answer: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["hookSpecificOutput"]["permissionDecision"], "deny");
    assert!(
        answer["hookSpecificOutput"]["permissionDecisionReason"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    let audit = stdout(&daemon.cli(&["--json", "audit"]));
    assert!(audit.contains(r#""status":"timeout""#), "{audit}");

    // The daemon is down: blocked; with --on-error ask, left to the agent's own prompt.
    let mut dead = Command::new(BIN);
    dead.args([
        "hook",
        "claude-code",
        "--url",
        "http://127.0.0.1:9",
        "--token-file",
        &token_arg,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = run(dead, Some(event));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
    let mut ask = Command::new(BIN);
    ask.args([
        "hook",
        "claude-code",
        "--url",
        "http://127.0.0.1:9",
        "--on-error",
        "ask",
        "--token-file",
        &token_arg,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = run(ask, Some(event));
    assert_eq!(out.status.code(), Some(0));
    let answer: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["hookSpecificOutput"]["permissionDecision"], "ask");
}
