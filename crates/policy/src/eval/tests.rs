use super::*;
use crate::rule::Origin;
use crate::shell;
use proptest::prelude::*;

fn rule(id: &str, action: Effect, kind: Kind, pattern: &str) -> Rule {
    let spec = RuleSpec {
        id: Some(id.into()),
        ..RuleSpec::new(action, kind, pattern)
    };
    Rule::new(spec, id.into(), Origin::Config { index: 0 }).unwrap()
}

fn shell_subject(cmd: &str) -> Subject {
    Subject {
        kind: Kind::Shell,
        targets: shell::targets(cmd),
        operation: None,
        agent: Some("opencode".into()),
        workspace: Some("/home/u/proj".into()),
        session: Some("s1".into()),
        requester: Some("tok_agent".into()),
        input: None,
    }
}

#[test]
fn allow_git_does_not_allow_git_and_rm() {
    let set = RuleSet::new(vec![rule("git", Effect::Allow, Kind::Shell, "git *")]).unwrap();
    let d = set.decide(&shell_subject("git status"), 0);
    assert_eq!((d.effect, d.rule.as_deref()), (Effect::Allow, Some("git")));
    let d = set.decide(&shell_subject("git status && rm -rf ~"), 0);
    assert_eq!(d.effect, Effect::Ask, "{d:?}");
    assert_eq!(d.rule, None);
    assert!(d.reason.contains("rm -rf ~"), "{}", d.reason);
    let d = set.decide(&shell_subject("git log $(rm -rf ~)"), 0);
    assert_eq!(d.effect, Effect::Ask);
}

#[test]
fn any_denied_part_denies_the_whole_and_deny_beats_a_remembered_allow() {
    let set = RuleSet::new(vec![
        rule("git", Effect::Allow, Kind::Shell, "git *"),
        rule("no-rm", Effect::Deny, Kind::Shell, "rm *"),
        rule("remembered", Effect::Allow, Kind::Shell, "rm -rf ~"),
    ])
    .unwrap();
    let d = set.decide(&shell_subject("git status; sudo rm -rf ~"), 0);
    assert_eq!((d.effect, d.rule.as_deref()), (Effect::Deny, Some("no-rm")));
    let d = set.decide(&shell_subject("rm -rf ~"), 0);
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.parts[0].matched.len(), 2);
}

#[test]
fn ask_rules_set_timeout_and_approvals_and_filters_apply() {
    let mut ask = rule("ask-deploy", Effect::Ask, Kind::Shell, "deploy *");
    ask.spec.timeout = Some(30);
    ask.spec.approvals = Some(2);
    let mut other_agent = rule("codex-only", Effect::Allow, Kind::Shell, "deploy *");
    other_agent = Rule::new(
        RuleSpec {
            agent: Some("codex".into()),
            ..other_agent.spec.clone()
        },
        "codex-only".into(),
        Origin::Config { index: 0 },
    )
    .unwrap();
    let set = RuleSet::new(vec![ask, other_agent]).unwrap();
    let d = set.decide(&shell_subject("deploy prod"), 0);
    assert_eq!(
        (d.effect, d.timeout, d.approvals),
        (Effect::Ask, Some(30), 2)
    );
    assert_eq!(
        d.parts[0].matched.len(),
        1,
        "the codex-only rule does not apply to opencode"
    );
}

#[test]
fn expired_rules_and_unparseable_commands() {
    let mut r = rule("old", Effect::Allow, Kind::Shell, "*");
    r.spec.expires_at = Some(100);
    let set = RuleSet::new(vec![r]).unwrap();
    assert_eq!(set.decide(&shell_subject("ls"), 99).effect, Effect::Allow);
    assert_eq!(set.decide(&shell_subject("ls"), 100).effect, Effect::Ask);
    let d = set.decide(&shell_subject("echo 'unterminated"), 0);
    assert_eq!(d.effect, Effect::Ask);
    assert!(d.reason.contains("cannot parse"), "{}", d.reason);
}

#[test]
fn path_globs_keep_star_within_a_segment() {
    let set = RuleSet::new(vec![
        rule("src", Effect::Allow, Kind::File, "/home/u/proj/src/*"),
        rule("env", Effect::Deny, Kind::File, "**/.env"),
    ])
    .unwrap();
    let file = |p: &str| Subject {
        kind: Kind::File,
        targets: vec![Target::new(p)],
        operation: Some(FileOp::Modify),
        agent: None,
        workspace: None,
        session: None,
        requester: None,
        input: None,
    };
    assert_eq!(
        set.decide(&file("/home/u/proj/src/main.rs"), 0).effect,
        Effect::Allow
    );
    assert_eq!(
        set.decide(&file("/home/u/proj/src/a/b.rs"), 0).effect,
        Effect::Ask
    );
    assert_eq!(
        set.decide(&file("/home/u/proj/src/.env"), 0).effect,
        Effect::Deny
    );
}

#[test]
fn narrow_rules_cover_the_request_and_little_else() {
    let s = shell_subject("git commit -m 'x y'");
    let specs = narrow_rules(&s, false);
    assert_eq!(specs.len(), 1);
    assert_eq!(specs[0].pattern, "{git commit,git commit *}");
    assert_eq!(specs[0].agent.as_deref(), Some("opencode"));
    let rules: Vec<Rule> = specs
        .into_iter()
        .enumerate()
        .map(|(i, s)| Rule::new(s, format!("n{i}"), Origin::Config { index: 0 }).unwrap())
        .collect();
    let set = RuleSet::new(rules).unwrap();
    assert_eq!(set.decide(&s, 0).effect, Effect::Allow);
    assert_eq!(
        set.decide(&shell_subject("git commit"), 0).effect,
        Effect::Allow
    );
    assert_eq!(
        set.decide(&shell_subject("git push"), 0).effect,
        Effect::Ask
    );
    assert_eq!(
        set.decide(&shell_subject("git commit && rm x"), 0).effect,
        Effect::Ask
    );
    let mut other = shell_subject("git commit -m z");
    other.agent = Some("codex".into());
    assert_eq!(
        set.decide(&other, 0).effect,
        Effect::Ask,
        "another agent is not covered"
    );
    assert_eq!(escape("a*b{c}"), "a\\*b\\{c\\}");
    let rm = narrow_rules(&shell_subject("rm -rf ~"), false);
    assert_eq!(rm[0].pattern, "rm -rf ~", "never `any rm`");
    let ls = narrow_rules(&shell_subject("ls"), true);
    assert_eq!(
        (ls[0].pattern.as_str(), ls[0].session.as_deref()),
        ("ls", Some("s1"))
    );
}

#[test]
fn an_edited_pattern_is_no_wider_than_the_suggestion() {
    let git = narrow_rules(&shell_subject("git commit -m x"), false);
    assert!(no_wider("{git commit,git commit *}", &git));
    assert!(no_wider("git commit -m *", &git));
    assert!(no_wider("git commit", &git));
    for wide in [
        "*",
        "git *",
        "{git commit *,rm *}",
        "git commi*",
        "rm *",
        "git commitx *",
    ] {
        assert!(!no_wider(wide, &git), "{wide}");
    }
    let rm = narrow_rules(&shell_subject("rm '*'"), false);
    assert_eq!(rm[0].pattern, "rm \\*");
    assert!(no_wider("rm \\*", &rm));
    assert!(!no_wider("rm *", &rm), "an escaped star is not a star");
    let dir = vec![RuleSpec::new(
        Effect::Allow,
        Kind::Directory,
        "/home/u/x/**",
    )];
    assert!(no_wider("/home/u/x/sub/**", &dir));
    assert!(!no_wider("/home/u/**", &dir));
    assert!(!no_wider("/home/u/x**", &dir));
}

#[test]
fn remembered_rules_bind_the_verified_requester() {
    let specs = narrow_rules(&shell_subject("ls"), false);
    assert_eq!(specs[0].requester.as_deref(), Some("tok_agent"));
    let rules: Vec<Rule> = specs
        .into_iter()
        .map(|s| Rule::new(s, "n".into(), Origin::Config { index: 0 }).unwrap())
        .collect();
    let set = RuleSet::new(rules).unwrap();
    assert_eq!(set.decide(&shell_subject("ls"), 0).effect, Effect::Allow);
    let mut other = shell_subject("ls");
    other.requester = Some("tok_other".into());
    assert_eq!(
        set.decide(&other, 0).effect,
        Effect::Ask,
        "same names, another credential"
    );
}

#[test]
fn an_allow_never_covers_an_opaque_part_but_deny_sees_every_form() {
    let set = RuleSet::new(vec![
        rule("git", Effect::Allow, Kind::Shell, "git *"),
        rule("no-rm", Effect::Deny, Kind::Shell, "rm *"),
    ])
    .unwrap();
    for cmd in [
        "PATH=/tmp/evil git status",
        "git status $(( $(touch /tmp/m) ))",
        "x='$(touch /tmp/m)'; git status ${x@P}",
        "git status $x",
    ] {
        assert_eq!(
            set.decide(&shell_subject(cmd), 0).effect,
            Effect::Ask,
            "{cmd}"
        );
    }
    for cmd in [
        "sudo -u root rm -rf /",
        "timeout -s KILL 5 rm x",
        "env -u HOME rm x",
        "exec -a x rm y",
        "stdbuf -o L rm x",
        "/bin/rm x",
        "$'\\x72m' x",
        "X=1 rm x",
        "sudo --weird rm x",
        "xargs rm",
        "git status $(rm -rf /)",
        "echo $(( $(rm x) ))",
    ] {
        assert_eq!(
            set.decide(&shell_subject(cmd), 0).effect,
            Effect::Deny,
            "{cmd}"
        );
    }
}

fn effect() -> impl Strategy<Value = Effect> {
    prop_oneof![Just(Effect::Allow), Just(Effect::Ask), Just(Effect::Deny)]
}

proptest! {
    #[test]
    fn the_decision_does_not_depend_on_rule_order(
        specs in proptest::collection::vec((effect(), 0usize..6), 0..12),
        seed in any::<u64>(),
        cmd in 0usize..5,
    ) {
        let patterns = ["git *", "rm *", "*", "ls", "git status", "{ls,ls *}"];
        let commands = ["git status", "rm -rf ~", "ls -la && git push", "ls", "echo hi | rm x"];
        let rules: Vec<Rule> = specs.iter().enumerate()
            .map(|(i, (e, p))| rule(&format!("r{i}"), *e, Kind::Shell, patterns[*p]))
            .collect();
        let mut shuffled = rules.clone();
        // A deterministic shuffle from the seed.
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let subject = shell_subject(commands[cmd]);
        let a = RuleSet::new(rules.clone()).unwrap().decide(&subject, 0);
        let b = RuleSet::new(shuffled).unwrap().decide(&subject, 0);
        prop_assert_eq!(&a, &b);
        // Deny wins whenever any matching rule denies any part.
        let any_deny = a.parts.iter().any(|p| p.matched.iter().any(|m| m.action == Effect::Deny));
        prop_assert_eq!(a.effect == Effect::Deny, any_deny);
        // A rule that matches nothing changes nothing.
        let mut extra = rules;
        extra.push(rule("zz-unmatched", Effect::Deny, Kind::Shell, "no-such-command-xyz *"));
        let c = RuleSet::new(extra).unwrap().decide(&subject, 0);
        prop_assert_eq!(a.effect, c.effect);
        prop_assert_eq!(a.rule, c.rule);
    }
}

/// A tool rule with optional argument matchers and an annotation filter.
fn tool_rule(
    id: &str,
    action: Effect,
    pattern: &str,
    input: Option<(&str, &str)>,
    destructive: Option<bool>,
) -> Rule {
    let spec = RuleSpec {
        id: Some(id.into()),
        input: input.map(|(k, g)| [(k.to_owned(), g.to_owned())].into_iter().collect()),
        annotations: destructive.map(|d| [("destructive".to_owned(), d)].into_iter().collect()),
        ..RuleSpec::new(action, Kind::Tool, pattern)
    };
    Rule::new(spec, id.into(), Origin::Config { index: 0 }).unwrap()
}

fn tool_subject(name: &str, input: serde_json::Value, destructive: Option<bool>) -> Subject {
    Subject {
        kind: Kind::Tool,
        targets: vec![Target::new(name)],
        operation: None,
        agent: None,
        workspace: None,
        session: None,
        requester: None,
        input: Some(crate::input::Input {
            value: input,
            home: Some("/home/me".into()),
            hints: destructive
                .map(|d| [("destructive".to_owned(), d)].into_iter().collect())
                .unwrap_or_default(),
        }),
    }
}

#[test]
fn argument_rules_match_only_when_every_matcher_does_and_keep_precedence() {
    let set = RuleSet::new(vec![
        tool_rule(
            "src",
            Effect::Allow,
            "fs__write_file",
            Some(("path", "~/src/**")),
            None,
        ),
        tool_rule(
            "ssh",
            Effect::Deny,
            "fs__*",
            Some(("path", "~/.ssh/**")),
            None,
        ),
        tool_rule("boom", Effect::Ask, "mcp__fs__*", None, Some(true)),
    ])
    .unwrap();
    let decide = |input, d| set.decide(&tool_subject("fs__write_file", input, d), 0);
    let inside = decide(serde_json::json!({"path": "/home/me/src/a.rs"}), None);
    assert_eq!(inside.effect, Effect::Allow);
    assert!(
        inside.reason.contains("its arguments (path)"),
        "{}",
        inside.reason
    );
    assert_eq!(
        decide(serde_json::json!({"path": "/home/me/.ssh/id"}), None).effect,
        Effect::Deny
    );
    assert_eq!(
        decide(serde_json::json!({"path": "/etc/x"}), None).effect,
        Effect::Ask
    );
    assert_eq!(
        decide(serde_json::json!({}), None).effect,
        Effect::Ask,
        "no argument, no match"
    );
    // The server calls it destructive: the ask outranks the allow (via the mcp__ alias).
    let d = decide(serde_json::json!({"path": "/home/me/src/a.rs"}), Some(true));
    assert_eq!((d.effect, d.rule.as_deref()), (Effect::Ask, Some("boom")));
    assert_eq!(
        decide(
            serde_json::json!({"path": "/home/me/src/a.rs"}),
            Some(false)
        )
        .effect,
        Effect::Allow
    );
}

proptest! {
    #[test]
    fn tool_decisions_with_argument_and_annotation_matchers_do_not_depend_on_rule_order(
        specs in proptest::collection::vec((effect(), 0usize..4, 0usize..4, 0usize..3), 0..12),
        seed in any::<u64>(),
        call in 0usize..4,
        destructive in 0usize..3,
    ) {
        let patterns = ["fs__*", "fs__write_file", "mcp__fs__write_file", "*"];
        let inputs = [None, Some(("path", "/home/me/src/**")), Some(("path", "~/.ssh/**")), Some(("/opts/mode", "w*"))];
        let hints = [None, Some(true), Some(false)];
        let calls = [
            serde_json::json!({"path": "/home/me/src/a"}),
            serde_json::json!({"path": "/home/me/.ssh/id", "opts": {"mode": "write"}}),
            serde_json::json!({"paths": ["/home/me/src/a"]}),
            serde_json::json!({"path": "/etc/passwd", "opts": {"mode": "read"}}),
        ];
        let rules: Vec<Rule> = specs.iter().enumerate()
            .map(|(i, (e, p, inp, h))| tool_rule(&format!("r{i}"), *e, patterns[*p], inputs[*inp], hints[*h]))
            .collect();
        let mut shuffled = rules.clone();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let subject = tool_subject("fs__write_file", calls[call].clone(), hints[destructive]);
        let a = RuleSet::new(rules.clone()).unwrap().decide(&subject, 0);
        let b = RuleSet::new(shuffled).unwrap().decide(&subject, 0);
        prop_assert_eq!(&a, &b);
        let any_deny = a.parts.iter().any(|p| p.matched.iter().any(|m| m.action == Effect::Deny));
        prop_assert_eq!(a.effect == Effect::Deny, any_deny);
        // Adding a matcher to a rule never makes it match more.
        for (i, (e, p, _, h)) in specs.iter().enumerate() {
            let unconditional = tool_rule("u", *e, patterns[*p], None, hints[*h]);
            let narrowed = tool_rule("u", *e, patterns[*p], Some(("path", "/nowhere/**")), hints[*h]);
            let wide = RuleSet::new(vec![unconditional]).unwrap().decide(&subject, 0);
            let narrow = RuleSet::new(vec![narrowed]).unwrap().decide(&subject, 0);
            prop_assert!(narrow.rule.is_none() || wide.rule.is_some(), "rule {}", i);
        }
    }
}
