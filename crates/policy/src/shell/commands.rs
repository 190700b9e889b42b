//! What some commands do with their arguments: bash's builtins (which read names and
//! arithmetic), and wrappers (`sudo`, `env`, `timeout`, …) read by their option grammar to find
//! the command they run.

use super::{MAX_DEPTH, Part, words::basename};

/// Bash builtins: their arguments are read by bash itself, some as names or arithmetic.
pub(super) const BUILTINS: &[&str] = &[
    "declare",
    "typeset",
    "local",
    "export",
    "readonly",
    "printf",
    "read",
    "unset",
    "test",
    "[",
    "mapfile",
    "readarray",
    "wait",
    "getopts",
    "fc",
    "compgen",
    "complete",
    "bind",
    "shopt",
    "set",
    "command",
    "builtin",
    "exec",
    "caller",
    "dirs",
    "pushd",
    "popd",
    "cd",
    "echo",
    "kill",
    "ulimit",
    "umask",
    "type",
    "history",
    "jobs",
    "disown",
    "suspend",
    "times",
    "return",
    "exit",
    "shift",
    "break",
    "continue",
];

/// How a wrapper reads its own options before the command it runs.
pub(super) struct Grammar {
    name: &'static str,
    /// Short options that take the next word (or the rest of the same word) as their value.
    with_value: &'static str,
    /// Short options that take no value.
    flags: &'static str,
    /// Long options that take a value (`--user root` or `--user=root`).
    long_with_value: &'static [&'static str],
    /// Long options that take no value.
    long_flags: &'static [&'static str],
    /// Positional words before the command (`timeout 5`).
    positional: usize,
    /// `NAME=value` words before the command are assignments for it (`env`, `sudo`).
    assignments: bool,
    /// The wrapped command also gets arguments the policy cannot see (`xargs`).
    adds_arguments: bool,
}

/// A wrapper with no options of note: the fields each grammar below leaves out.
const PLAIN: Grammar = Grammar {
    name: "",
    with_value: "",
    flags: "",
    long_with_value: &[],
    long_flags: &[],
    positional: 0,
    assignments: false,
    adds_arguments: false,
};

pub(super) const GRAMMARS: &[Grammar] = &[
    Grammar {
        name: "sudo",
        with_value: "ugpCDrtTURh",
        flags: "AbEHiklKnPSsVve",
        long_with_value: &[
            "--user",
            "--group",
            "--prompt",
            "--close-from",
            "--chdir",
            "--role",
            "--type",
            "--command-timeout",
            "--other-user",
            "--chroot",
            "--host",
        ],
        long_flags: &[
            "--preserve-env",
            "--login",
            "--shell",
            "--non-interactive",
            "--background",
            "--set-home",
            "--stdin",
            "--askpass",
            "--preserve-groups",
            "--reset-timestamp",
            "--remove-timestamp",
            "--edit",
            "--list",
            "--validate",
            "--version",
            "--help",
        ],
        assignments: true,
        ..PLAIN
    },
    Grammar {
        name: "doas",
        with_value: "uC",
        flags: "ns",
        ..PLAIN
    },
    Grammar {
        name: "env",
        with_value: "uCS",
        flags: "i0v",
        long_with_value: &["--unset", "--chdir", "--split-string"],
        long_flags: &["--ignore-environment", "--null", "--debug"],
        assignments: true,
        ..PLAIN
    },
    Grammar {
        name: "timeout",
        with_value: "sk",
        flags: "v",
        long_with_value: &["--signal", "--kill-after"],
        long_flags: &["--preserve-status", "--foreground", "--verbose"],
        positional: 1,
        ..PLAIN
    },
    Grammar {
        name: "nice",
        with_value: "n",
        long_with_value: &["--adjustment"],
        ..PLAIN
    },
    Grammar {
        name: "ionice",
        with_value: "cnp",
        flags: "t",
        long_with_value: &["--class", "--classdata", "--pid"],
        ..PLAIN
    },
    Grammar {
        name: "stdbuf",
        with_value: "ioe",
        long_with_value: &["--input", "--output", "--error"],
        ..PLAIN
    },
    Grammar {
        name: "nohup",
        ..PLAIN
    },
    Grammar {
        name: "exec",
        with_value: "a",
        flags: "cl",
        ..PLAIN
    },
    Grammar {
        name: "command",
        flags: "pvV",
        ..PLAIN
    },
    Grammar {
        name: "builtin",
        ..PLAIN
    },
    Grammar {
        name: "time",
        with_value: "fo",
        flags: "pav",
        long_with_value: &["--format", "--output"],
        long_flags: &["--portability", "--append", "--verbose"],
        ..PLAIN
    },
    Grammar {
        name: "xargs",
        with_value: "adEILnPs",
        flags: "0oprtx",
        long_with_value: &[
            "--arg-file",
            "--delimiter",
            "--max-lines",
            "--max-args",
            "--max-procs",
            "--max-chars",
            "--replace",
            "--eof",
            "--process-slot-var",
        ],
        long_flags: &[
            "--null",
            "--no-run-if-empty",
            "--verbose",
            "--interactive",
            "--exit",
            "--open-tty",
        ],
        adds_arguments: true,
        ..PLAIN
    },
    Grammar {
        name: "caffeinate",
        with_value: "tw",
        flags: "dimsu",
        ..PLAIN
    },
    Grammar {
        name: "chronic",
        flags: "ev",
        ..PLAIN
    },
    Grammar {
        name: "unbuffer",
        flags: "p",
        ..PLAIN
    },
];

/// Where the wrapped command starts, reading the wrapper's options by its grammar; `Err` when an
/// option is not in the grammar (the start is then unknown).
pub(super) fn wrapped_start(g: &Grammar, args: &[String]) -> Result<(usize, Vec<String>), String> {
    let mut i = 0;
    let mut assignments = Vec::new();
    let mut positional = g.positional;
    while let Some(w) = args.get(i) {
        if w == "--" {
            i += 1;
            break;
        }
        if let Some(long) = w.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or(long);
            let takes = g
                .long_with_value
                .iter()
                .any(|l| l.trim_start_matches("--") == name);
            let flag = g
                .long_flags
                .iter()
                .any(|l| l.trim_start_matches("--") == name);
            if !takes && !flag {
                return Err(format!("`{}` option `--{name}` is not known", g.name));
            }
            i += if takes && !long.contains('=') { 2 } else { 1 };
            continue;
        }
        if w.len() > 1 && w.starts_with('-') {
            // A cluster of short options; one that takes a value ends it.
            let chars = w[1..].char_indices();
            let mut used_next = false;
            for (at, c) in chars {
                if g.with_value.contains(c) {
                    used_next = at + 1 + c.len_utf8() > w.len() - 1;
                    break;
                }
                if g.name == "nice" && c.is_ascii_digit() {
                    break;
                }
                if !g.flags.contains(c) {
                    return Err(format!("`{}` option `-{c}` is not known", g.name));
                }
            }
            i += if used_next { 2 } else { 1 };
            continue;
        }
        if g.assignments && w.contains('=') && !w.starts_with('=') {
            assignments.push(w.clone());
            i += 1;
            continue;
        }
        if positional > 0 {
            positional -= 1;
            i += 1;
            continue;
        }
        break;
    }
    Ok((i, assignments))
}

/// Adds to `part` the forms ask and deny rules also match, and pushes the commands its wrappers
/// run as parts of their own.
pub(super) fn unwrap(
    words: &[String],
    assignments: &[String],
    part: &mut Part,
    inner: &mut Vec<Part>,
) {
    let mut also = Vec::new();
    if let Some(first) = words.first() {
        let bare = words.join(" ");
        if !assignments.is_empty() {
            also.push(bare);
        }
        if basename(first) != first {
            let mut b = vec![basename(first).to_owned()];
            b.extend(words[1..].iter().cloned());
            also.push(b.join(" "));
        }
    }
    let mut rest: &[String] = words;
    let mut extra_assignments: Vec<String> = assignments.to_vec();
    let mut opaque = part.opaque.clone();
    let mut depth = 0;
    while let Some((first, tail)) = rest.split_first() {
        depth += 1;
        let Some(g) = GRAMMARS.iter().find(|g| g.name == basename(first)) else {
            break;
        };
        if depth > MAX_DEPTH {
            break;
        }
        // Every later word could be where the command starts: ask and deny rules see each.
        for start in 0..tail.len() {
            let cand = tail[start..].join(" ");
            also.push(cand.clone());
            let name = basename(&tail[start]);
            if name != tail[start] {
                let mut b = vec![name.to_owned()];
                b.extend(tail[start + 1..].iter().cloned());
                also.push(b.join(" "));
            }
        }
        match wrapped_start(g, tail) {
            Ok((start, assigned)) => {
                rest = tail.get(start..).unwrap_or(&[]);
                if rest.is_empty() {
                    break;
                }
                extra_assignments.extend(assigned);
                let why = if g.adds_arguments {
                    Some(format!("`{}` adds arguments read from its input", g.name))
                } else {
                    opaque.clone()
                };
                let mut text: Vec<&str> = extra_assignments.iter().map(String::as_str).collect();
                text.extend(rest.iter().map(String::as_str));
                let mut p = Part {
                    text: text.join(" "),
                    assignments: extra_assignments.clone(),
                    redirects: Vec::new(),
                    also: Vec::new(),
                    opaque: why.clone(),
                };
                if !extra_assignments.is_empty() {
                    p.also.push(rest.join(" "));
                }
                if g.adds_arguments {
                    // The arguments it will add, for deny rules such as `rm *`.
                    p.also.push(format!("{} …", rest.join(" ")));
                }
                if let Some(f) = rest.first().filter(|f| basename(f) != f.as_str()) {
                    let mut b = vec![basename(f).to_owned()];
                    b.extend(rest[1..].iter().cloned());
                    p.also.push(b.join(" "));
                }
                opaque = why;
                inner.push(p);
            }
            Err(why) => {
                part.opaque.get_or_insert(why);
                break;
            }
        }
    }
    also.retain(|a| *a != part.text);
    also.dedup();
    part.also = also;
    // find's -exec/-execdir/-ok run a command of their own.
    if words.first().is_some_and(|w| basename(w) == "find") {
        let mut i = 0;
        while i < words.len() {
            if matches!(words[i].as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
                let end = words[i + 1..]
                    .iter()
                    .position(|w| w == ";" || w == "+")
                    .map_or(words.len(), |e| i + 1 + e);
                let cmd = &words[i + 1..end];
                if !cmd.is_empty() {
                    let mut p = Part::opaque(cmd.join(" "), "`find` adds the file names it finds");
                    if let Some(f) = cmd.first().filter(|f| basename(f) != f.as_str()) {
                        let mut b = vec![basename(f).to_owned()];
                        b.extend(cmd[1..].iter().cloned());
                        p.also.push(b.join(" "));
                    }
                    inner.push(p);
                }
                i = end;
            }
            i += 1;
        }
    }
}
