//! The web inbox's HTML, rendered on the server with `maud` (which escapes every value). Pure:
//! views take data and return markup; the handlers in `web` fetch the data.

use agentgate_policy::{Kind, Origin, RuleSpec, Scope};
use maud::{DOCTYPE, Markup, html};

use crate::api::{AuditEntry, PairingInfo, PermissionView, RuleView, Source, Status, TokenInfo};
use crate::audit::Verification;
use crate::auth::Principal;
use crate::clock::Timestamp;

/// Long text shows this many characters before "show all".
const TEXT_PREVIEW_CHARS: usize = 400;
/// A preview or diff shows this many lines before "show all".
const PREVIEW_LINES: usize = 30;
/// A file request lists this many paths before "show all".
const PATHS_SHOWN: usize = 8;

/// Who is looking at a page: the verified principal and, for a web session, its CSRF token
/// (which the page embeds for its script). The pages' one name for it.
pub struct Viewer {
    /// The signed-in principal.
    pub principal: std::sync::Arc<Principal>,
    /// The session's CSRF token (absent for a bearer-token request).
    pub csrf: Option<String>,
}

impl Viewer {
    fn can(&self, scope: Scope) -> bool {
        self.principal.scopes.allows(scope)
    }
}

/// Which navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/`.
    Inbox,
    /// `/history`.
    History,
    /// `/rules`.
    Rules,
    /// `/tokens`.
    Tokens,
    /// `/audit`.
    Audit,
    /// None (sign-in, errors).
    None,
}

fn page(title: &str, viewer: Option<&Viewer>, nav: Nav, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(csrf) = viewer.and_then(|v| v.csrf.as_deref()) {
                    meta name="csrf-token" content=(csrf);
                }
                title { (title) " · agentgate" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "agentgate" }
                    @if let Some(v) = viewer {
                        nav aria-label="Main" {
                            (nav_link("/", "Inbox", nav == Nav::Inbox))
                            (nav_link("/history", "History", nav == Nav::History))
                            (nav_link("/rules", "Rules", nav == Nav::Rules))
                            @if v.can(Scope::Admin) {
                                (nav_link("/tokens", "Tokens", nav == Nav::Tokens))
                            }
                            (nav_link("/audit", "Audit", nav == Nav::Audit))
                        }
                        div.who {
                            span title=(format!("scopes: {}", v.principal.scopes)) { (v.principal.name) }
                            @if v.csrf.is_some() {
                                button.link type="button" data-action="sign-out" { "Sign out" }
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

fn nav_link(href: &str, label: &str, current: bool) -> Markup {
    html! {
        @if current { a href=(href) aria-current="page" { (label) } }
        @else { a href=(href) { (label) } }
    }
}

/// The sign-in page. `notice`: why the person is here (expired session); `error`: what failed.
pub fn sign_in(next: &str, notice: Option<&str>, error: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        Nav::None,
        html! {
            section.narrow {
                h1 { "Sign in" }
                p { "Enter the owner passphrase set with " code { "agentgate passphrase set" } "." }
                @if let Some(n) = notice { p.notice role="status" { (n) } }
                @if let Some(e) = error { p.error role="alert" #sign-in-error { (e) } }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="passphrase" { "Passphrase" }
                    input #passphrase type="password" name="passphrase" autocomplete="current-password" required autofocus;
                    button.primary type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// The page a pairing link opens: one button, so that a link preview cannot use the link up.
pub fn pair_confirm(code_path: &str) -> Markup {
    page(
        "Pair this device",
        None,
        Nav::None,
        html! {
            section.narrow {
                h1 { "Sign this device in" }
                p { "This one-time link signs this browser in to agentgate with the scopes it was created with (by default: answering permission requests)." }
                form method="post" action=(code_path) {
                    button.primary type="submit" { "Sign in on this device" }
                }
            }
        },
    )
}

/// The OAuth consent page: who asks (self-asserted), for what, where the answer goes, and the
/// passphrase to approve.
pub fn consent(p: &crate::oauth::Pending, error: Option<&str>, loopback_redirect: bool) -> Markup {
    let host = url::Url::parse(&p.redirect_uri)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| {
                format!(
                    "{h}{}",
                    u.port().map(|p| format!(":{p}")).unwrap_or_default()
                )
            })
        })
        .unwrap_or_else(|| p.redirect_uri.clone());
    let name = p.client_name.as_deref().unwrap_or("An unnamed application");
    page(
        "Allow an application",
        None,
        Nav::None,
        html! {
            section.narrow.consent {
                h1 { "Allow " q #client-name { (marked(name)) } "?" }
                p.muted {
                    "The name is what the application says about itself; agentgate cannot check it. "
                    "Client id " code { (p.client_id) } "."
                }
                @if let Some(server) = crate::oauth::resource::server_of(&p.resource) {
                    p #resource { "For the MCP server " strong { (server) } " behind agentgate: every tool call it makes there is decided by your rules, or by you." }
                }
                p { "It asks to:" }
                ul #scopes {
                    @for scope in p.scopes.iter() {
                        li { strong { (scope.as_str()) } " — " (crate::oauth::scope_words(scope)) }
                    }
                }
                p { "The answer goes to " strong #redirect-host { (host) } " (" code { (p.redirect_uri) } ")." }
                @if loopback_redirect {
                    p.warning role="note" #loopback-warning {
                        "That is a program on this computer. Approve only if you just started "
                        "signing in from an application yourself: any local program can ask."
                    }
                }
                @if let Some(e) = error { p.error role="alert" #consent-error { (e) } }
                form method="post" action="/authorize" {
                    input type="hidden" name="authz" value=(p.id);
                    input type="hidden" name="csrf" value=(p.csrf);
                    @if p.one_click {
                        p #one-click { "You allowed this application these permissions before, and you are signed in: one click confirms." }
                    } @else {
                        label for="passphrase" { "Owner passphrase (to approve)" }
                        input #passphrase type="password" name="passphrase" autocomplete="current-password" autofocus;
                        label.check {
                            input type="checkbox" name="remember" value="yes";
                            " Remember this application for these permissions"
                        }
                    }
                    div.actions {
                        button.primary type="submit" name="decision" value="approve" { "Approve" }
                        button type="submit" name="decision" value="deny" formnovalidate { "Deny" }
                    }
                }
            }
        },
    )
}

/// A page with one message (expired link, no passphrase, …).
pub fn message(title: &str, text: &str, viewer: Option<&Viewer>) -> Markup {
    page(
        title,
        viewer,
        Nav::None,
        html! {
            section.narrow {
                h1 { (title) }
                p role="alert" { (text) }
                p { a href="/" { "Go to the inbox" } }
            }
        },
    )
}

/// 403 for a page whose scope the viewer lacks.
pub fn forbidden(viewer: &Viewer, required: Scope) -> Markup {
    message(
        "Not allowed here",
        &format!(
            "You are signed in as {} with the scopes {}; this page needs `{required}`.",
            viewer.principal.name, viewer.principal.scopes
        ),
        Some(viewer),
    )
}

/// The inbox: every pending request, live. `after`: the audit sequence the list is current to;
/// the page's event stream resumes from there.
pub fn inbox(viewer: &Viewer, pending: &[PermissionView], after: i64, now: Timestamp) -> Markup {
    page(
        "Inbox",
        Some(viewer),
        Nav::Inbox,
        html! {
            section #inbox data-after=(after) data-now=(now.as_millis()) {
                div.bar {
                    h1 { "Inbox " span #pending-count.count aria-live="polite" { (pending.len()) } }
                    div.tools {
                        span #live.live role="status" { "connecting…" }
                        button.link type="button" #notify hidden { "Enable notifications" }
                        button.link type="button" data-action="help" aria-controls="keys" { "Keyboard shortcuts" }
                    }
                }
                aside #keys.keys hidden {
                    h2 { "Keyboard" }
                    dl {
                        dt { kbd { "j" } " / " kbd { "k" } } dd { "next / previous request" }
                        dt { kbd { "a" } } dd { "allow once" }
                        dt { kbd { "s" } } dd { "allow for the session" }
                        dt { kbd { "w" } } dd { "always allow… (shows the rule)" }
                        dt { kbd { "d" } } dd { "deny (with the message typed in the card)" }
                        dt { kbd { "m" } } dd { "write a message to the agent" }
                    }
                }
                p #empty.empty hidden[!pending.is_empty()] { "Nothing is waiting for you." }
                div #cards {
                    @for p in pending { (card(viewer, p, now)) }
                }
            }
        },
    )
}

/// One request as a card (also served alone, for the live list).
pub fn card(viewer: &Viewer, p: &PermissionView, now: Timestamp) -> Markup {
    let pending = p.status == Status::Pending;
    let can_answer = pending && viewer.can(Scope::Approve);
    let title_id = format!("t-{}", p.id);
    let r = &p.request;
    html! {
        article.card #(format!("card-{}", p.id)) data-id=(p.id) data-status=(p.status.as_str())
            data-deadline=[p.deadline.map(|d| d.as_millis())] tabindex="0" aria-labelledby=(title_id) {
            header {
                span.kind { (p.kind) }
                h2 #(title_id) { (marked(&short(&p.summary, 160))) }
                @if pending {
                    span.left { (time_left(p.deadline, now)) }
                }
            }
            dl.facts {
                @if let Some(a) = &r.agent { dt { "Agent" } dd { (marked(a)) } }
                dt { "Asked by" } dd { (p.requester) }
                @if let Some(w) = &r.workspace { dt { "Workspace" } dd { code { (w) } } }
                @if let Some(s) = &r.session { dt { "Session" } dd { code { (s) } } }
                @if p.approvals_required > 1 {
                    dt { "Approvals" } dd { (p.approvals.len()) " of " (p.approvals_required) }
                }
            }
            (target(p))
            @if let Some(reason) = &r.reason {
                blockquote.reason { (long_text(reason, "reason")) }
            }
            @if can_answer {
                div.actions {
                    button.allow type="button" data-reply="once" { "Allow once" }
                    @let several = p.approvals_required > 1;
                    @let session_off = if several {
                        Some("it needs several approvals, and a remembered allow never outranks the rule asking for them")
                    } else if r.session.is_none() {
                        Some("this request names no session")
                    } else {
                        None
                    };
                    button type="button" data-reply="session" disabled[session_off.is_some()] title=[session_off] { "Allow for session" }
                    button type="button" data-action="always" aria-expanded="false" aria-controls=(format!("always-{}", p.id))
                        disabled[several] title=[several.then_some("it needs several approvals; allow it once")] { "Always allow…" }
                    span.deny {
                        label.sr for=(format!("msg-{}", p.id)) { "Message to the agent (optional)" }
                        input #(format!("msg-{}", p.id)) type="text" name="message" maxlength="2000" placeholder="Message to the agent (optional)";
                        button.danger type="button" data-reply="deny" { "Deny" }
                    }
                }
                div.always #(format!("always-{}", p.id)) hidden {
                    p { "Allowing always saves " (if p.suggested_rules.len() == 1 { "this rule" } else { "these rules" }) " (every part of the request must be allowed):" }
                    @for (i, rule) in p.suggested_rules.iter().enumerate() {
                        div.rule-edit {
                            p.rule-text { (rule_words(rule)) }
                            @if p.suggested_rules.len() == 1 {
                                label for=(format!("pat-{}-{i}", p.id)) { "Pattern (editable)" }
                                input.pattern #(format!("pat-{}-{i}", p.id)) type="text" value=(rule.pattern) data-suggested=(rule.pattern) spellcheck="false";
                            } @else {
                                code.pattern-fixed { (marked(&rule.pattern)) }
                            }
                        }
                    }
                    button.allow type="button" data-reply="always" { "Save rule and allow" }
                }
            } @else if pending {
                p.hint { "You can see this request but not answer it (answering needs the approve scope)." }
            } @else {
                p.decided { (decided_words(p)) }
            }
            p.status role="status" aria-live="polite" {}
        }
    }
}

fn target(p: &PermissionView) -> Markup {
    let r = &p.request;
    html! {
        @match p.kind {
            Kind::Shell => {
                @if let Some(cmd) = &r.command { div.target { (long_text(cmd, "cmd")) } }
                @if let Some(cwd) = &r.cwd { p.sub { "in " code { (cwd) } } }
                // Every part bash would run, each on its own line and never cut: a second
                // command hidden behind padding is as visible as the first.
                @if !p.parts.is_empty() {
                    p.sub { "It runs " (p.parts.len()) (if p.parts.len() == 1 { " part:" } else { " parts:" }) }
                    ol.parts {
                        @for part in &p.parts {
                            li {
                                code { (marked(&part.text)) }
                                @if let Some(why) = &part.opaque {
                                    span.opaque { " — no rule can allow this: " (why) }
                                }
                            }
                        }
                    }
                }
            }
            Kind::File | Kind::Directory => {
                @if let Some(op) = r.operation { p.sub { "Operation: " strong { (op.as_str()) } } }
                @let paths: Vec<&String> = r.path.iter().chain(r.paths.iter().flatten()).collect();
                ul.paths {
                    @for path in paths.iter().take(PATHS_SHOWN) { li { code { (path) } } }
                }
                @if paths.len() > PATHS_SHOWN {
                    details {
                        summary { "show all " (paths.len()) " paths" }
                        ul.paths { @for path in paths.iter().skip(PATHS_SHOWN) { li { code { (path) } } } }
                    }
                }
                @if let Some(to) = &r.target_path { p.sub { "to " code { (to) } } }
                (preview(r.old_content.as_deref(), r.content_preview.as_deref()))
            }
            Kind::Tool => {
                @if let Some(name) = &r.name { p.sub { "Tool " code { (marked(name)) } } }
                @if let Some(input) = &r.input {
                    @let text = serde_json::to_string_pretty(input).unwrap_or_default();
                    div.target { (long_text(&text, "json")) }
                }
            }
            Kind::Network => {
                div.target { pre.cmd { (r.method.as_deref().unwrap_or("GET")) " " (r.url.as_deref().unwrap_or("")) } }
            }
        }
    }
}

/// A unified diff when both old and new content are known, else the new content.
fn preview(old: Option<&str>, new: Option<&str>) -> Markup {
    match (old, new) {
        (Some(old), Some(new)) => {
            let diff = similar::TextDiff::from_lines(old, new);
            let mut lines: Vec<(&'static str, String)> = Vec::new();
            for group in diff.grouped_ops(3) {
                if let (Some(first), Some(last)) = (group.first(), group.last()) {
                    let o = first.old_range().start..last.old_range().end;
                    let n = first.new_range().start..last.new_range().end;
                    lines.push((
                        "hunk",
                        format!(
                            "@@ -{},{} +{},{} @@",
                            o.start + 1,
                            o.len(),
                            n.start + 1,
                            n.len()
                        ),
                    ));
                }
                for op in &group {
                    for change in diff.iter_changes(op) {
                        let (class, sign) = match change.tag() {
                            similar::ChangeTag::Delete => ("del", '-'),
                            similar::ChangeTag::Insert => ("add", '+'),
                            similar::ChangeTag::Equal => ("ctx", ' '),
                        };
                        let text = change.value().trim_end_matches(['\n', '\r']);
                        lines.push((class, format!("{sign}{text}")));
                    }
                }
            }
            let render = |lines: &[(&'static str, String)]| {
                html! { @for (class, text) in lines { span class=(class) { (text) "\n" } } }
            };
            html! {
                figure.preview {
                    figcaption { "Changes" }
                    pre.diff aria-label="unified diff" { (render(&lines[..lines.len().min(PREVIEW_LINES)])) }
                    @if lines.len() > PREVIEW_LINES {
                        details {
                            summary { "show all " (lines.len()) " lines" }
                            pre.diff { (render(&lines[PREVIEW_LINES..])) }
                        }
                    }
                }
            }
        }
        (_, Some(new)) => {
            let lines: Vec<&str> = new.lines().collect();
            html! {
                figure.preview {
                    figcaption { "Content" }
                    pre { (lines[..lines.len().min(PREVIEW_LINES)].join("\n")) }
                    @if lines.len() > PREVIEW_LINES {
                        details {
                            summary { "show all " (lines.len()) " lines" }
                            pre { (lines[PREVIEW_LINES..].join("\n")) }
                        }
                    }
                }
            }
        }
        _ => html! {},
    }
}

/// Text in a `pre`, cut with "show all" past [`TEXT_PREVIEW_CHARS`].
fn long_text(text: &str, class: &str) -> Markup {
    let count = text.chars().count();
    if count <= TEXT_PREVIEW_CHARS {
        return html! { pre class=(class) { (marked(text)) } };
    }
    let head: String = text.chars().take(TEXT_PREVIEW_CHARS).collect();
    html! {
        pre class=(class) { (marked(&head)) "…" }
        details {
            summary { "show all (" (count) " characters)" }
            pre class=(class) { (marked(text)) }
        }
    }
}

/// Agent-written text with every invisible, bidi or control character shown as a marked escape
/// (newlines and tabs in a block stay as they are).
fn marked(text: &str) -> Markup {
    html! {
        @for (plain, hidden) in runs(text) {
            (plain)
            @if let Some(c) = hidden {
                mark.hidden title="an invisible or direction-changing character" { (crate::display::escape(c)) }
            }
        }
    }
}

/// `text` cut before each hidden character (not newline or tab).
fn runs(text: &str) -> Vec<(&str, Option<char>)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if crate::display::hidden(c) && c != '\n' && c != '\t' {
            out.push((&text[start..i], Some(c)));
            start = i + c.len_utf8();
        }
    }
    out.push((&text[start..], None));
    out
}

fn scope_list(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max).collect();
        s.push('…');
        s
    }
}

fn time_left(deadline: Option<Timestamp>, now: Timestamp) -> String {
    match deadline {
        None => "waits indefinitely".to_owned(),
        Some(d) => format!("{} left", duration_words(d.since(now).as_secs())),
    }
}

fn duration_words(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d {}h", secs / 86_400, (secs % 86_400) / 3600),
    }
}

/// "allow shell `git status *` for agent opencode in /repo".
pub fn rule_words(rule: &RuleSpec) -> Markup {
    html! {
        strong { (rule.action) } " " (rule.kind) " " code { (marked(&rule.pattern)) }
        @if let Some(ops) = &rule.operations {
            " (" (ops.iter().map(|o| o.as_str()).collect::<Vec<_>>().join(", ")) ")"
        }
        @if let Some(a) = &rule.agent { " for agent " code { (marked(a)) } }
        @if let Some(w) = &rule.workspace { " in " code { (w) } }
        @if let Some(s) = &rule.session { " in session " code { (s) } }
        @if let Some(n) = rule.approvals { @if n > 1 { ", " (n) " approvals" } }
    }
}

fn decided_words(p: &PermissionView) -> String {
    let status = match p.status {
        Status::Allowed => "Allowed",
        Status::Denied => "Denied",
        Status::Timeout => "Timed out (denied)",
        Status::Cancelled => "Withdrawn",
        Status::Pending => "Pending",
    };
    let by = match &p.decided_by {
        None => String::new(),
        Some(by) => match (by.source, &by.approver, &by.rule) {
            (Source::Person, Some(name), _) => format!(" by {name}"),
            (Source::Rule, _, Some(rule)) if by.auto_resolved => {
                format!(" by rule {rule} (saved while it was pending)")
            }
            (Source::Rule, _, Some(rule)) => format!(" by rule {rule}"),
            (Source::Rule, _, None) => " by the policy (no rule matched)".to_owned(),
            (Source::Upstream, Some(name), _) => {
                format!(" in {name} itself (answered there, not through agentgate)")
            }
            (Source::Requester, Some(name), _) => format!(" by {name}, before anyone answered"),
            _ => String::new(),
        },
    };
    match &p.message {
        Some(m) => format!("{status}{by}: “{m}”"),
        None => format!("{status}{by}"),
    }
}

/// Decided requests, newest first.
pub fn history(viewer: &Viewer, decided: &[PermissionView], next: Option<&str>) -> Markup {
    page(
        "History",
        Some(viewer),
        Nav::History,
        html! {
            h1 { "History" }
            @if decided.is_empty() { p.empty { "No decisions yet." } }
            ol.history {
                @for p in decided {
                    li data-status=(p.status.as_str()) {
                        span class=(format!("badge {}", p.status.as_str())) { (p.status.as_str()) }
                        " " span.kind { (p.kind) } " "
                        code { (short(&p.summary, 200)) }
                        div.meta {
                            (decided_words(p))
                            " · asked by " (p.requester)
                            @if let Some(a) = &p.request.agent { " (agent " (a) ")" }
                            " · " time datetime=(p.created_at.to_string()) { (p.created_at) }
                            " · " code { (p.id) }
                        }
                    }
                }
            }
            @if let Some(cursor) = next {
                p { a href=(format!("/history?cursor={cursor}")) { "Older decisions →" } }
            }
        },
    )
}

/// Configured rules (read-only) and stored ones (deletable by an admin).
pub fn rules(viewer: &Viewer, rules: &[RuleView]) -> Markup {
    let (configured, stored): (Vec<&RuleView>, Vec<&RuleView>) =
        rules.iter().partition(|r| r.read_only);
    let admin = viewer.can(Scope::Admin);
    page(
        "Rules",
        Some(viewer),
        Nav::Rules,
        html! {
            h1 { "Rules" }
            p { "Precedence: " strong { "deny > ask > allow" } ", whatever the order; no match asks. A remembered allow never overrides a configured ask or deny." }
            h2 { "Remembered and added" }
            @if stored.is_empty() { p.empty { "None yet: “Always allow” in the inbox saves one." } }
            ul.rules {
                @for r in &stored {
                    li #(format!("rule-{}", r.spec.id.as_deref().unwrap_or(""))) {
                        (rule_words(&r.spec))
                        div.meta {
                            (origin_words(&r.origin))
                            @match r.expires { Some(at) => { " · expires " time datetime=(at.to_string()) { (at) } }, None => { " · no expiry" } }
                            @if let Some(id) = &r.spec.id { " · " code { (id) } }
                        }
                        @if admin {
                            @if let Some(id) = &r.spec.id {
                                button.danger type="button" data-delete-rule=(id) { "Delete" }
                            }
                        }
                    }
                }
            }
            h2 { "Configured in config.toml (read-only)" }
            @if configured.is_empty() { p.empty { "No [[rules]] in the config file." } }
            ul.rules {
                @for r in &configured {
                    li { (rule_words(&r.spec)) div.meta { (origin_words(&r.origin)) } }
                }
            }
        },
    )
}

fn origin_words(origin: &Origin) -> String {
    let when = |ms: i64| Timestamp::from_millis(ms).to_string();
    match origin {
        Origin::Config { index } => format!("config.toml, rule {index}"),
        Origin::Api { by, at } => format!("added by {by} at {}", when(*at)),
        Origin::Remembered {
            request_id,
            approver,
            at,
        } => format!(
            "remembered by {approver} answering {request_id} at {}",
            when(*at)
        ),
    }
}

/// What signed in through OAuth, for the Tokens page.
pub struct OAuthView<'a> {
    /// Registered clients.
    pub clients: &'a [crate::oauth::ClientInfo],
    /// Remembered consent.
    pub grants: &'a [crate::oauth::GrantInfo],
}

/// Tokens, pairings and OAuth clients, for an admin.
pub fn tokens(
    viewer: &Viewer,
    tokens: &[TokenInfo],
    pairings: &[PairingInfo],
    oauth: &OAuthView<'_>,
) -> Markup {
    page(
        "Tokens",
        Some(viewer),
        Nav::Tokens,
        html! {
            h1 { "Tokens" }
            form #create-token.panel {
                h2 { "Create a token" }
                label for="token-name" { "Name" }
                input #token-name name="name" required maxlength="64" placeholder="opencode";
                fieldset {
                    legend { "Scopes" }
                    @for scope in Scope::ALL {
                        label.check {
                            input type="checkbox" name="scopes" value=(scope.as_str()) checked[scope == Scope::Request];
                            " " (scope.as_str())
                        }
                    }
                }
                label for="token-expires" { "Expires in" }
                input #token-expires name="expires_in" value="90d" placeholder="90d, 12h or never";
                button.primary type="submit" { "Create token" }
                p.status role="status" aria-live="polite" {}
            }
            div #new-secret.panel hidden {
                h2 { "Copy the token now" }
                p { "It is shown this once; only its hash is stored." }
                label for="secret" { "Token" }
                input #secret type="text" readonly;
                button type="button" data-action="copy" { "Copy" }
            }
            table.list {
                caption { "Live tokens" }
                thead { tr { th { "Name" } th { "Scopes" } th { "Expires" } th { "Last used" } th { span.sr { "Actions" } } } }
                tbody {
                    @for t in tokens {
                        tr #(format!("token-{}", t.id)) {
                            td { (t.name) }
                            td { (scope_list(&t.scopes)) }
                            td { @match t.expires_at { Some(at) => { (at) @if t.expired { " (expired)" } }, None => "never" } }
                            td { @match t.last_used_at { Some(at) => (at), None => "never" } }
                            td { button.danger type="button" data-revoke-token=(t.id) data-name=(t.name) { "Revoke" } }
                        }
                    }
                }
            }
            h2 { "Paired devices" }
            p { "Pair a phone with " code { "agentgate pair" } " (a one-time link and QR code, scope approve)." }
            @if pairings.is_empty() { p.empty { "No paired devices." } }
            ul.rules {
                @for pr in pairings {
                    li #(format!("pairing-{}", pr.id)) {
                        strong { (pr.name) } " · " (scope_list(&pr.scopes))
                        div.meta {
                            @match pr.redeemed_at {
                                Some(at) => { "signed in at " (at) },
                                None => { "link unused, works until " (pr.expires_at) },
                            }
                            " · created by " (pr.created_by)
                        }
                        button.danger type="button" data-revoke-pairing=(pr.id) { "Revoke" }
                    }
                }
            }
            h2 { "MCP clients (OAuth)" }
            p { "Applications that registered to sign in at " code { "/mcp" } ". Their names are what they say about themselves. Deleting one stops its tokens at once." }
            @if oauth.clients.is_empty() { p.empty { "No registered clients." } }
            ul.rules #oauth-clients {
                @for c in oauth.clients {
                    li #(format!("client-{}", c.client_id)) {
                        strong { (marked(c.client_name.as_deref().unwrap_or("(no name)"))) } " · " code { (c.client_id) }
                        div.meta { "registered " (c.created_at) " · redirect " (c.redirect_uris.join(" ")) }
                        button.danger type="button" data-delete-client=(c.client_id) { "Delete" }
                    }
                }
            }
            h2 { "Remembered consent" }
            @if oauth.grants.is_empty() { p.empty { "None: every sign-in shows the consent page." } }
            ul.rules #oauth-grants {
                @for g in oauth.grants {
                    li #(format!("grant-{}", g.id)) {
                        strong { (marked(g.client_name.as_deref().unwrap_or("(no name)"))) } " · " (g.scope)
                        div.meta { "since " (g.created_at) " · " code { (g.client_id) } }
                        button.danger type="button" data-revoke-grant=(g.id) { "Revoke" }
                    }
                }
            }
        },
    )
}

/// The audit log's latest entries and the chain check.
pub fn audit(viewer: &Viewer, entries: &[AuditEntry], check: &Verification) -> Markup {
    page(
        "Audit",
        Some(viewer),
        Nav::Audit,
        html! {
            h1 { "Audit log" }
            @if check.ok {
                p.ok #chain role="status" { "Hash chain intact: " (check.entries) " entries verified." }
            } @else {
                p.error #chain role="alert" {
                    "Hash chain broken. "
                    @if let Some(bad) = &check.first_bad {
                        "First bad entry: #" (bad.seq) " (" (bad.problem) "): " (bad.detail)
                    }
                }
            }
            table.list {
                caption { "Latest entries, newest first" }
                thead { tr { th { "#" } th { "Time" } th { "Event" } th { "Subject" } th { "Details" } } }
                tbody {
                    @for e in entries {
                        tr {
                            td { (e.seq) }
                            td { time datetime=(e.at.to_string()) { (e.at) } }
                            td { (e.event) }
                            td { code { (e.subject.as_deref().unwrap_or("")) } }
                            td { code.data { (short(&e.data.to_string(), 240)) } }
                        }
                    }
                }
            }
        },
    )
}
