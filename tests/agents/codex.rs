//! Real Codex (`codex exec`, pinned in tests/agents/package-lock.json) against the scripted
//! Responses-API model, with the hook that `agentgate hook install codex` wrote and trusted.

use std::path::Path;
use std::process::Stdio;

use crate::daemon::Daemon;
use crate::models::{self, Model};

const CONFIG: &str = r#"
default_timeout = 120

[[rules]]
action = "allow"
kind = "shell"
pattern = "touch allowed.txt"
"#;

async fn codex(bin: &Path, codex_home: &Path, project: &Path, model: &Model) -> String {
    let output = tokio::process::Command::new(bin)
        .args([
            "exec",
            "--skip-git-repo-check",
            "--json",
            "--disable",
            "plugins",
            "-s",
            "danger-full-access",
            "Run the command.",
        ])
        .current_dir(project)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", codex_home.parent().unwrap())
        .env("CODEX_HOME", codex_home)
        .env("FAKE_OPENAI_KEY", "x")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let _ = model;
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub async fn run(bin: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let codex_home = home.join(".codex");
    let project = tmp.path().join("proj");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::create_dir_all(&project).unwrap();
    let model = models::start().await;
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "# the person's own settings stay as they are\nmodel = \"gpt-fake\"\nmodel_provider = \"fake\"\n\
             check_for_update_on_startup = false\n\n[model_providers.fake]\nname = \"Fake\"\n\
             base_url = \"http://{}/v1\"\nwire_api = \"responses\"\nenv_key = \"FAKE_OPENAI_KEY\"\n\n\
             [analytics]\nenabled = false\n",
            model.addr
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(tmp.path(), CONFIG).await;
    let envs = [
        ("HOME", home.as_path()),
        ("CODEX_HOME", codex_home.as_path()),
    ];
    let codex_arg = bin.display().to_string();

    // Not installed yet: status says so, and fails.
    let status = daemon.cli(&["hook", "status", "codex", "--codex", &codex_arg], &envs);
    assert!(!status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains("not installed"));

    let install = daemon.cli(
        &[
            "hook",
            "install",
            "codex",
            "--codex",
            &codex_arg,
            "--timeout",
            "60",
        ],
        &envs,
    );
    let said = String::from_utf8_lossy(&install.stdout).into_owned();
    assert!(
        install.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&install.stderr)
    );
    assert!(said.contains("trusted by Codex"), "{said}");
    let config = std::fs::read_to_string(codex_home.join("config.toml")).unwrap();
    assert!(config.starts_with("# the person's own settings stay as they are"));
    assert!(config.contains("trusted_hash = \"sha256:"), "{config}");
    let status = daemon.cli(&["hook", "status", "codex", "--codex", &codex_arg], &envs);
    let said = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.status.success(), "{said}");
    assert!(said.contains("is trusted"), "{said}");

    // Allowed by policy: Codex's own flow goes on and the command runs.
    model.set_command("touch allowed.txt");
    let out = codex(bin, &codex_home, &project, &model).await;
    assert!(project.join("allowed.txt").exists(), "{out}");
    assert_eq!(
        daemon.all().await.last().unwrap()["decided_by"]["source"],
        "rule"
    );

    // Denied by a person: not run, and the model gets the reason.
    model.set_command("touch denied.txt");
    let run = in_background(bin, &codex_home, &project, &model);
    let pending = daemon.pending().await;
    assert_eq!(pending["request"]["agent"], "codex");
    assert_eq!(pending["request"]["command"], "touch denied.txt");
    daemon
        .reply(
            pending["id"].as_str().unwrap(),
            "deny",
            Some("ask the release manager first"),
        )
        .await;
    let out = run.await.unwrap();
    assert!(!project.join("denied.txt").exists(), "{out}");
    let last = model.requests().last().unwrap().to_string();
    assert!(
        last.contains("ask the release manager first"),
        "the model did not get the reason: {last}"
    );

    // The daemon is down: agentgate's command hook exits 2, which Codex honours as a block (a
    // hook that crashed or hung would fail open: Codex has no onFailure).
    daemon.stop();
    model.set_command("touch down.txt");
    let out = codex(bin, &codex_home, &project, &model).await;
    assert!(
        !project.join("down.txt").exists(),
        "ran with the daemon down: {out}"
    );
    let last = model.requests().last().unwrap().to_string();
    assert!(
        last.contains("the agentgate daemon is not running"),
        "{last}"
    );

    // Editing the hook by hand invalidates Codex's trust: status notices.
    daemon.restart().await;
    let hooks = codex_home.join("hooks.json");
    let text = std::fs::read_to_string(&hooks)
        .unwrap()
        .replace("--timeout 60", "--timeout 61");
    std::fs::write(&hooks, text).unwrap();
    let status = daemon.cli(&["hook", "status", "codex", "--codex", &codex_arg], &envs);
    let said = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(!status.status.success(), "{said}");
    assert!(said.contains("skips it silently"), "{said}");

    let removed = daemon.cli(&["hook", "uninstall", "codex"], &envs);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let config = std::fs::read_to_string(codex_home.join("config.toml")).unwrap();
    assert!(!config.contains("trusted_hash"), "{config}");
    assert!(config.contains("[analytics]"));
}

/// Runs the agent in the background (a person answers while it waits).
fn in_background(
    bin: &Path,
    home: &Path,
    project: &Path,
    model: &Model,
) -> tokio::task::JoinHandle<String> {
    let (bin, home, project, model) = (
        bin.to_owned(),
        home.to_owned(),
        project.to_owned(),
        model.clone(),
    );
    tokio::spawn(async move { codex(&bin, &home, &project, &model).await })
}
