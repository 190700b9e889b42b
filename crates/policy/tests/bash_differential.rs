//! The normaliser against real bash: for every line of a corpus (and generated combinations),
//! bash runs the line in a throwaway directory where every command on `PATH` is a stub that logs
//! its name and arguments (and `command_not_found_handle` logs any other name). Every command
//! bash ran must be among the parts the normaliser reported (as written, or one of the forms ask
//! and deny rules match), unless the normaliser called the line opaque. Nothing bash runs may be
//! invisible to the policy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use agentgate_policy::shell::{self, Part};
use proptest::prelude::*;

/// Names stubbed on `PATH`; any other name reaches `command_not_found_handle`, which logs too.
const STUBS: &[&str] = &[
    "git", "rm", "touch", "ls", "cat", "curl", "sh", "bash", "make", "sudo", "env", "timeout",
    "nice", "ionice", "stdbuf", "nohup", "xargs", "find", "doas", "id", "whoami", "date", "grep",
    "sed", "awk", "python3", "node", "npm", "cargo", "chmod", "mv", "cp", "mkdir", "tee", "head",
    "sleep", "wc", "sort", "diff",
];

struct Sandbox {
    dir: tempfile::TempDir,
    runs: std::cell::Cell<u32>,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        // One record per run: the words, separated by \x1f, ended by \x1e.
        // One write per record, so commands of a pipeline do not interleave.
        let stub = "#!/bin/bash\nr=${0##*/}; for a in \"$@\"; do r+=$'\\x1f'\"$a\"; done; printf '%s\\x1e' \"$r\" >> \"$AG_LOG\"\n";
        for name in STUBS {
            let p = bin.join(name);
            std::fs::write(&p, stub).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let env = "command_not_found_handle() { local r=$1; shift; for a in \"$@\"; do r+=$'\\x1f'\"$a\"; done; printf '%s\\x1e' \"$r\" >> \"$AG_LOG\"; return 127; }\n";
        std::fs::write(dir.path().join("bash_env"), env).unwrap();
        Sandbox {
            dir,
            runs: std::cell::Cell::new(0),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// What bash ran for `line`: each command's words joined by spaces.
    fn run(&self, line: &str) -> Vec<String> {
        // A log per run: a process substitution may still write after bash exits.
        self.runs.set(self.runs.get() + 1);
        let log = self.path(&format!("log{}", self.runs.get()));
        let work = self.path("work");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir(&work).unwrap();
        // A line that runs long (or a busy machine) is stopped; what it ran until then is in the
        // log and is checked all the same.
        Command::new("/usr/bin/timeout")
            .args(["10", "/bin/bash", "-c", line])
            .current_dir(&work)
            .env_clear()
            .env("PATH", self.path("bin"))
            .env("HOME", &work)
            .env("BASH_ENV", self.path("bash_env"))
            .env("AG_LOG", &log)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.split('\x1e')
            .filter(|r| !r.is_empty())
            .map(|r| r.split('\x1f').collect::<Vec<_>>().join(" "))
            .collect()
    }
}

fn bash_available() -> bool {
    Path::new("/bin/bash").exists() && Path::new("/usr/bin/timeout").exists()
}

/// `Ok(opaque?)` when every command bash ran is visible; `Err` names the one that was not.
fn check(sandbox: &Sandbox, line: &str) -> Result<bool, String> {
    let ran = sandbox.run(line);
    let parts: Vec<Part> = match shell::parse(line) {
        Ok(p) => p,
        // Unparseable lines are opaque as a whole.
        Err(_) => return Ok(true),
    };
    let opaque = parts.iter().any(|p| p.opaque.is_some());
    if opaque {
        return Ok(true);
    }
    for cmd in &ran {
        let seen = parts
            .iter()
            .any(|p| p.text == *cmd || p.also.iter().any(|a| a == cmd));
        if !seen {
            return Err(format!(
                "{line:?}: bash ran `{cmd}`, which the normaliser did not report (parts: {:?})",
                parts.iter().map(|p| &p.text).collect::<Vec<_>>()
            ));
        }
    }
    Ok(false)
}

/// The examples from the attack report and every construct of the bash grammar.
const CORPUS: &[&str] = &[
    // The attack report.
    "git status $(( $(touch /tmp/m) ))",
    "git status $[ $(touch /tmp/m) ]",
    "case a in $(touch /tmp/m)) ;; *) git status;; esac",
    "x='$(touch /tmp/m)'; git status ${x@P}",
    "x='a[$(touch /tmp/m)]'; git status ${!x}",
    "a=(); a[$(touch /tmp/m)]=1; git status",
    "PATH=/tmp/evil git status",
    "LD_PRELOAD=/tmp/x.so git status",
    "GIT_SSH_COMMAND='touch /tmp/m' git fetch",
    "PATH=/tmp/evil:$PATH; git status",
    "git status >&/some/file",
    "sudo -u root rm -rf /x",
    "timeout -s KILL 5 rm x",
    "env -u HOME rm x",
    "exec -a x rm y",
    "stdbuf -o L rm x",
    "$'\\x72m' -rf x",
    "$'\\162\\155' -rf x",
    // Lists, pipelines, and-or.
    "git status && rm -rf x",
    "git status || rm x; ls | grep a",
    "ls & wait",
    "! git status",
    "time git status",
    "time -p git status",
    // Compound commands.
    "{ ls; touch a; }",
    "(cd /tmp && make)",
    "if git status; then rm x; elif ls; then touch y; else cat z; fi",
    "while false; do rm x; done; ls",
    "until true; do rm x; done",
    "for f in a b; do rm \"$f\"; done",
    "for f in a b; do rm x; done",
    "for ((i=0; i<2; i++)); do ls; done",
    "for ((i=0; i<$(touch /tmp/m; echo 1); i++)); do ls; done",
    "select x in a; do ls; done </dev/null",
    "case x in x) rm x;; *) ls;; esac",
    "case $(id) in *) ls;; esac",
    "(( 1 + 2 )) && ls",
    "(( $(touch /tmp/m) ))",
    "[[ -f x ]] || ls",
    "[[ $(touch /tmp/m) == a ]]",
    "[[ x -eq 0 ]]",
    "coproc ls",
    "coproc x { ls; }",
    "f() { rm -rf x; }; f",
    "function g { touch y; }; g",
    "git() { touch /tmp/m; }; git status",
    // Words and expansions.
    "echo $(touch /tmp/m)",
    "echo `touch /tmp/m`",
    "echo \"$(touch /tmp/m)\"",
    "echo \"a `id` b\"",
    "echo $(echo $(touch /tmp/m))",
    "echo ${x:-$(touch /tmp/m)}",
    "echo ${x:=$(touch /tmp/m)}",
    "echo ${x:+$(touch /tmp/m)}",
    "echo ${x#$(touch /tmp/m)}",
    "echo ${x/$(touch /tmp/m)/y}",
    "echo ${x:$(touch /tmp/m; echo 0)}",
    "x=1; echo ${#x}",
    "echo $((1 + $(touch /tmp/m; echo 1)))",
    "echo $((a[$(touch /tmp/m)]))",
    "x='a[$(touch /tmp/m)]'; echo $((x))",
    "x='a[$(touch /tmp/m)]'; (( x ))",
    "x='a[$(touch /tmp/m)]'; [[ x -eq 0 ]]",
    "x='a[$(touch /tmp/m)]'; let y=x",
    "declare -a a; x='$(touch /tmp/m)'; echo ${a[$x]}",
    "printf -v 'a[$(touch /tmp/m)]' x",
    "declare 'a[$(touch /tmp/m)]=1'",
    "read 'a[$(touch /tmp/m)]' </dev/null",
    "unset 'a[$(touch /tmp/m)]'",
    "[[ -v 'a[$(touch /tmp/m)]' ]]",
    "test -v 'a[$(touch /tmp/m)]'",
    "diff <(ls a) <(ls b)",
    "cat <(touch /tmp/m)",
    "ls > >(cat)",
    "{rm,-rf,x}",
    "r{m,m} x",
    "git add *.rs",
    "\\rm x",
    "r''m x",
    "\"r\"m x",
    "'rm' -rf x",
    "r\\m x",
    "$'rm' x",
    "~/bin/tool x",
    // Redirections.
    "echo hi > out",
    "git status >> out 2>&1",
    "git status &> out",
    "git status &>> out",
    "git status >| out",
    "git status <> out",
    "git status 3> out",
    "git status > $(touch /tmp/m; echo out)",
    "cat <<EOF\n$(touch /tmp/m)\nEOF",
    "cat <<'EOF'\n$(touch /tmp/m)\nEOF",
    "cat <<< $(touch /tmp/m)",
    "cat <<EOF\n${x@P}\nEOF",
    // Builtins that run code.
    "eval 'touch /tmp/m'",
    "eval \"rm -rf x\"; ls",
    "eval touch /tmp/m",
    "x='touch /tmp/m'; eval $x",
    "trap 'touch /tmp/m' EXIT; ls",
    "source /dev/null; ls",
    ". /dev/null",
    "command touch /tmp/m",
    "command -p touch /tmp/m",
    "builtin eval 'touch /tmp/m'",
    "exec touch /tmp/m",
    "bash -c 'touch /tmp/m'",
    "shopt -s expand_aliases\nalias git='touch /tmp/m'\ngit status",
    "mapfile -C 'touch /tmp/m' -c 1 x <<< a",
    // Wrappers.
    "sudo rm x",
    "sudo -E -H rm x",
    "env X=1 Y=2 rm x",
    "env -i PATH=/x rm x",
    "timeout 5 nice -n 10 rm x",
    "nohup rm x",
    "xargs rm < /dev/null",
    "find . -exec rm {} \\;",
    "doas -u root rm x",
    "nice -5 rm x",
    "ionice -c 3 rm x",
    "X=1 Y=2 git status",
    "X=$(touch /tmp/m) git status",
    "export X=$(touch /tmp/m)",
    "local x=1 2>/dev/null; ls",
];

#[test]
fn every_command_bash_runs_in_the_corpus_is_visible_to_the_policy() {
    if !bash_available() {
        eprintln!("skipped: /bin/bash or /usr/bin/timeout missing");
        return;
    }
    let sandbox = Sandbox::new();
    // The harness itself sees what bash runs.
    assert_eq!(
        sandbox.run("git status; x=1 nosuch a"),
        ["git status", "nosuch a"]
    );
    let mut failures = Vec::new();
    let mut understood = 0;
    for line in CORPUS {
        match check(&sandbox, line) {
            Ok(false) => understood += 1,
            Ok(true) => {}
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} invisible:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Calling everything opaque would pass trivially; most plain lines must be understood.
    assert!(
        understood * 3 >= CORPUS.len(),
        "only {understood} of {} lines understood",
        CORPUS.len()
    );
    eprintln!(
        "corpus: {} lines, {understood} understood completely",
        CORPUS.len()
    );
}

/// Pieces the generator combines.
fn fragment() -> impl Strategy<Value = String> {
    let cmd = prop::sample::select(vec![
        "touch /tmp/m",
        "rm -rf x",
        "ls",
        "id",
        "git status",
        "cat a",
    ]);
    let leaf = cmd.prop_map(str::to_owned);
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} && {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}; {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} | {b}")),
            inner.clone().prop_map(|a| format!("echo $({a})")),
            inner.clone().prop_map(|a| format!("echo \"x `{a}` y\"")),
            inner
                .clone()
                .prop_map(|a| format!("git status $(( $({a}; echo 1) ))")),
            inner.clone().prop_map(|a| format!("echo ${{x:-$({a})}}")),
            inner.clone().prop_map(|a| format!("X=$({a}) git status")),
            inner.clone().prop_map(|a| format!("PATH=/tmp/e {a}")),
            inner.clone().prop_map(|a| format!("{{ {a}; }}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("if true; then {a}; fi")),
            inner
                .clone()
                .prop_map(|a| format!("case q in q) {a};; esac")),
            inner
                .clone()
                .prop_map(|a| format!("case $({a}) in *) ls;; esac")),
            inner
                .clone()
                .prop_map(|a| format!("eval '{}'", a.replace('\'', ""))),
            inner.clone().prop_map(|a| format!("sudo -u root {a}")),
            inner.clone().prop_map(|a| format!("timeout -s KILL 5 {a}")),
            inner.clone().prop_map(|a| format!("env -u HOME X=1 {a}")),
            inner.clone().prop_map(|a| format!("{a} > out")),
            inner.clone().prop_map(|a| format!("{a} >&out2")),
            inner.clone().prop_map(|a| format!("cat <({a})")),
            inner.clone().prop_map(|a| format!("f() {{ {a}; }}; f")),
            inner
                .clone()
                .prop_map(|a| format!("x='$({a})'; echo ${{x@P}}")),
            inner
                .clone()
                .prop_map(|a| format!("x='a[$({a})]'; echo ${{!x}}")),
            inner.clone().prop_map(|a| format!("[[ $({a}) == z ]]")),
            inner.prop_map(|a| format!("cat <<EOF\n$({a})\nEOF")),
        ]
    })
}

fn generated_cases() -> u32 {
    std::env::var("AGENTGATE_DIFFERENTIAL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: generated_cases(), failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn generated_lines_hide_nothing_from_the_policy(line in fragment()) {
        prop_assume!(bash_available());
        thread_local!(static SANDBOX: Sandbox = Sandbox::new());
        let result = SANDBOX.with(|s| check(s, &line));
        prop_assert!(result.is_ok(), "{}", result.err().unwrap_or_default());
    }
}
