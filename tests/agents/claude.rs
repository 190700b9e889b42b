//! Real Claude Code (`claude -p`, pinned in tests/agents/package-lock.json) against the scripted
//! Anthropic model, with the hook that `agentgate hook install claude-code` wrote.

use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::models::{self, Model};

const CONFIG: &str = r#"
default_timeout = 120

[[rules]]
action = "allow"
kind = "shell"
pattern = "touch allowed.txt"
"#;

/// Runs `claude -p` in `project` until it exits; returns its JSON result.
async fn claude(bin: &Path, home: &Path, project: &Path, model: &Model) -> Value {
    let tmp = home.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let output = tokio::process::Command::new(bin)
        .args([
            "-p",
            "Run the command.",
            "--output-format",
            "json",
            "--allowedTools",
            "Bash",
        ])
        .current_dir(project)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TMPDIR", &tmp)
        .env("ANTHROPIC_BASE_URL", format!("http://{}", model.addr))
        .env("ANTHROPIC_API_KEY", "x")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "claude printed no JSON result ({}): {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

pub async fn run(bin: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let project = tmp.path().join("proj");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&project).unwrap();
    let model = models::start().await;
    let mut daemon = Daemon::start(tmp.path(), CONFIG).await;

    // Installed by the CLI, twice: the second changes nothing.
    let home_env = [("HOME", home.as_path())];
    let project_arg = project.display().to_string();
    let install = [
        "hook",
        "install",
        "claude-code",
        "--project",
        &project_arg,
        "--timeout",
        "60",
    ];
    let first = daemon.cli(&install, &home_env);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let settings_path = project.join(".claude/settings.json");
    let settings = std::fs::read_to_string(&settings_path).unwrap();
    let again = daemon.cli(&install, &home_env);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already installed"));
    assert_eq!(std::fs::read_to_string(&settings_path).unwrap(), settings);
    let parsed: Value = serde_json::from_str(&settings).unwrap();
    let handler = &parsed["hooks"]["PreToolUse"][0]["hooks"][0];
    assert_eq!(handler["onFailure"], "block");
    assert_eq!(handler["timeout"], 90);
    let status = daemon.cli(
        &["hook", "status", "claude-code", "--project", &project_arg],
        &home_env,
    );
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    // 1. Allowed by policy: runs, and the request is the rule's.
    model.set_command("touch allowed.txt");
    let result = claude(bin, &home, &project, &model).await;
    assert!(
        project.join("allowed.txt").exists(),
        "allowed command did not run: {result}"
    );
    let decided = daemon.all().await;
    let first = decided.last().unwrap();
    assert_eq!(first["status"], "allowed");
    assert_eq!(first["decided_by"]["source"], "rule");
    assert_eq!(first["request"]["agent"], "claude-code");

    // 2. Asked, then approved by a person while Claude Code waits.
    model.set_command("touch asked.txt");
    let run = in_background(bin, &home, &project, &model);
    let pending = daemon.pending().await;
    assert_eq!(pending["kind"], "shell");
    assert_eq!(pending["request"]["command"], "touch asked.txt");
    assert_eq!(pending["request"]["cwd"], project_arg.as_str());
    daemon
        .reply(pending["id"].as_str().unwrap(), "allow", None)
        .await;
    run.await.unwrap();
    assert!(project.join("asked.txt").exists());

    // 3. Denied by a person with a message: not run, and the model reads the message.
    model.set_command("touch denied.txt");
    let run = in_background(bin, &home, &project, &model);
    let pending = daemon.pending().await;
    daemon
        .reply(
            pending["id"].as_str().unwrap(),
            "deny",
            Some("not on a Friday, use the staging box"),
        )
        .await;
    let result = run.await.unwrap();
    assert!(!project.join("denied.txt").exists());
    assert!(
        model
            .transcript()
            .contains("not on a Friday, use the staging box"),
        "the model never saw the reason; result: {result}"
    );

    // 4. A tool outside the PreToolUse matcher that Claude Code would prompt for (a Read outside
    //    the project) comes through its PermissionRequest hook, and a person allows it.
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("notes.txt"), "the-outside-content\n").unwrap();
    let notes = outside.join("notes.txt").display().to_string();
    model.set_tool("Read", serde_json::json!({"file_path": notes}));
    let run = in_background(bin, &home, &project, &model);
    let pending = daemon.pending().await;
    assert_eq!(pending["kind"], "file", "{pending}");
    assert_eq!(pending["request"]["operation"], "read");
    assert_eq!(pending["request"]["path"], notes.as_str());
    daemon
        .reply(pending["id"].as_str().unwrap(), "allow", None)
        .await;
    run.await.unwrap();
    assert!(
        model
            .requests()
            .last()
            .unwrap()
            .to_string()
            .contains("the-outside-content"),
        "the allowed Read did not run"
    );

    // 5. The daemon is down: blocked (fail closed), never run.
    daemon.stop();
    model.set_command("touch down.txt");
    let result = claude(bin, &home, &project, &model).await;
    assert!(
        !project.join("down.txt").exists(),
        "ran with the daemon down: {result}"
    );
    let last = model.requests().last().unwrap().to_string();
    assert!(
        last.contains("the agentgate daemon is not running"),
        "the model did not get the reason: {last}"
    );

    // The http hook (no process per tool call), installed in the git-ignored local settings.
    daemon.restart().await;
    let web = tmp.path().join("proj-http");
    std::fs::create_dir_all(&web).unwrap();
    let web_arg = web.display().to_string();
    let out = daemon.cli(
        &[
            "hook",
            "install",
            "claude-code",
            "--http",
            "--project",
            &web_arg,
            "--timeout",
            "60",
        ],
        &home_env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local = web.join(".claude/settings.local.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&local).unwrap().permissions());
    assert_eq!(
        mode & 0o077,
        0,
        "the token sits in this file: it is private"
    );
    let parsed: Value = serde_json::from_str(&std::fs::read_to_string(&local).unwrap()).unwrap();
    assert_eq!(parsed["hooks"]["PreToolUse"][0]["hooks"][0]["type"], "http");
    model.set_command("touch allowed.txt");
    let result = claude(bin, &home, &web, &model).await;
    assert!(web.join("allowed.txt").exists(), "{result}");
    model.set_command("rm -rf ./*");
    let run = in_background(bin, &home, &web, &model);
    let pending = daemon.pending().await;
    assert_eq!(pending["request"]["command"], "rm -rf ./*");
    daemon
        .reply(
            pending["id"].as_str().unwrap(),
            "deny",
            Some("keep the files"),
        )
        .await;
    run.await.unwrap();
    assert!(web.join("allowed.txt").exists(), "the denied rm ran");
    assert!(
        model
            .requests()
            .last()
            .unwrap()
            .to_string()
            .contains("keep the files")
    );
    // Daemon down: the http hook's failure blocks (onFailure), the file survives.
    daemon.stop();
    let result = claude(bin, &home, &web, &model).await;
    assert!(
        web.join("allowed.txt").exists(),
        "ran with the daemon down: {result}"
    );
    daemon.restart().await;

    // Uninstall removes exactly what install added.
    let removed = daemon.cli(
        &[
            "hook",
            "uninstall",
            "claude-code",
            "--project",
            &project_arg,
        ],
        &home_env,
    );
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let after: Value =
        serde_json::from_str(&std::fs::read_to_string(&settings_path).unwrap()).unwrap();
    assert_eq!(after, serde_json::json!({}));
}

/// Runs the agent in the background (a person answers while it waits).
fn in_background(
    bin: &Path,
    home: &Path,
    project: &Path,
    model: &Model,
) -> tokio::task::JoinHandle<Value> {
    let (bin, home, project, model) = (
        bin.to_owned(),
        home.to_owned(),
        project.to_owned(),
        model.clone(),
    );
    tokio::spawn(async move { claude(&bin, &home, &project, &model).await })
}
