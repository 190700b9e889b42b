//! The store's conformance suite: the contract of every `Store` method, tested once, on the
//! backend this run selected (`scripts/test` runs it on SQLite and on PostgreSQL). The last test
//! checks that every method the store declares is named here.

use std::sync::Arc;

use agentgate::api::Status;
use agentgate::clock::Timestamp;
use agentgate::store::oauth::{
    ClientCap, ClientRow, CodeRow, CodeUse, ConsentFormRow, FamilyRow, GrantRow, RefreshRow,
    RefreshUse,
};
use agentgate::store::web::{Failures, PairingRow, SessionRow};
use agentgate::store::{
    AuditRow, Conflict, DatabaseUrl, Decided, Error, Inserted, NewAudit, OAuthBinding,
    PendingBudget, PermissionRow, RuleRow, Store, TokenRow,
};
use agentgate_policy::{Scope, ScopeSet};

/// A store on a fresh database of the selected backend.
struct Fixture {
    store: Store,
    url: String,
    _dir: tempfile::TempDir,
    _db: Option<crate::pg::TestDb>,
}

impl Fixture {
    /// Runs one statement behind the store's back, as someone editing the database would.
    async fn edit(&self, sql: &str) {
        if self._db.is_some() {
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
        } else {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
    }
}

async fn open() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::pg::TestDb::if_selected();
    let raw = match &db {
        Some(db) => db.url(),
        None => format!("sqlite://{}", dir.path().join("store.db").display()),
    };
    let store = Store::open(&DatabaseUrl::parse(&raw).unwrap())
        .await
        .unwrap();
    assert_eq!(store.is_shared(), db.is_some());
    Fixture {
        store,
        url: raw,
        _dir: dir,
        _db: db,
    }
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

fn scopes(list: &[Scope]) -> ScopeSet {
    list.iter().copied().collect()
}

fn token(id: &str, name: &str, list: &[Scope]) -> TokenRow {
    let mut hash = [0u8; 32];
    hash[..id.len().min(32)].copy_from_slice(&id.as_bytes()[..id.len().min(32)]);
    TokenRow {
        id: id.into(),
        name: name.into(),
        secret_hash: hash,
        scopes: scopes(list),
        created_at: at(0),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
        created_by: None,
        oauth: None,
        person: None,
    }
}

fn entry(event: &'static str, subject: &str) -> Vec<NewAudit> {
    vec![NewAudit::of(
        at(0),
        event,
        Some(subject),
        serde_json::json!({}),
    )]
}

fn permission(id: &str, requester: &str, status: &str, created: i64) -> PermissionRow {
    PermissionRow {
        id: id.into(),
        kind: "shell".into(),
        summary: format!("run {id}"),
        body: r#"{"kind":"shell","command":"ls"}"#.into(),
        targets: r#"["ls"]"#.into(),
        agent: Some("opencode".into()),
        session: None,
        workspace: None,
        requester_id: requester.into(),
        requester_actor: requester.into(),
        requester_name: "agent".into(),
        status: Status::parse(status).unwrap(),
        created_at: at(created),
        deadline: (status == "pending").then(|| at(created + 60_000)),
        approvals_required: 1,
        decided_at: None,
        decided_by: None,
        message: None,
    }
}

#[tokio::test]
async fn tokens_names_revocation_and_the_last_admin() {
    let f = open().await;
    let s = &f.store;
    assert_eq!(s.count_tokens().await.unwrap(), 0);
    s.insert_token(
        &token("tok_a", "owner", &[Scope::Admin]),
        entry("token.created", "tok_a"),
    )
    .await
    .unwrap();
    s.insert_token(&token("tok_b", "agent", &[Scope::Request]), Vec::new())
        .await
        .unwrap();
    // insert_token: a live name is taken; the same secret twice is refused as a secret clash.
    let err = s
        .insert_token(&token("tok_c", "agent", &[Scope::Read]), Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict(Conflict::TokenName)),
        "{err:?}"
    );
    let mut clash = token("tok_a", "other", &[Scope::Read]);
    clash.id = "tok_d".into();
    let err = s.insert_token(&clash, Vec::new()).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict(Conflict::TokenSecret)),
        "{err:?}"
    );
    // token_by_hash, live_tokens, count_tokens
    let a = s
        .token_by_hash(&token("tok_a", "", &[]).secret_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a, token("tok_a", "owner", &[Scope::Admin]));
    assert!(s.token_by_hash(&[9; 32]).await.unwrap().is_none());
    let live: Vec<String> = s
        .live_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(live, ["agent", "owner"]);
    assert_eq!(s.count_tokens().await.unwrap(), 2);
    // touch_token
    s.touch_token("tok_b", at(5)).await.unwrap();
    let b = s
        .token_by_hash(&token("tok_b", "", &[]).secret_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.last_used_at, Some(at(5)));
    // revoke_token: the last live admin stays; others go, once; the name is free again.
    let err = s
        .revoke_token("tok_a", at(10), |_| Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LastAdmin), "{err:?}");
    let revoked = s
        .revoke_token("tok_b", at(10), |t| entry("token.revoked", &t.id))
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at(10)));
    let err = s
        .revoke_token("tok_b", at(11), |_| Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    s.insert_token(&token("tok_e", "agent", &[Scope::Read]), Vec::new())
        .await
        .unwrap();
    // A second admin lets the first go.
    s.insert_token(&token("tok_f", "admin2", &[Scope::Admin]), Vec::new())
        .await
        .unwrap();
    s.revoke_token("tok_a", at(12), |_| Vec::new())
        .await
        .unwrap();
    // setting, put_setting
    assert_eq!(s.setting("k").await.unwrap(), None);
    s.put_setting("k", "v1", at(0), Vec::new()).await.unwrap();
    s.put_setting("k", "v2", at(1), Vec::new()).await.unwrap();
    assert_eq!(s.setting("k").await.unwrap().as_deref(), Some("v2"));
}

#[tokio::test]
async fn a_row_edited_into_nonsense_is_reported_corrupt_not_misread() {
    let f = open().await;
    let s = &f.store;
    s.insert_token(&token("tok_a", "owner", &[Scope::Admin]), Vec::new())
        .await
        .unwrap();
    f.edit("UPDATE tokens SET scopes = 'admin,superuser' WHERE id = 'tok_a'")
        .await;
    let err = s
        .token_by_hash(&token("tok_a", "", &[]).secret_hash)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt(why) if why.contains("superuser")),
        "{err:?}"
    );
    let session = SessionRow {
        id: "ses_1".into(),
        secret_hash: [1; 32],
        name: "owner (web)".into(),
        scopes: scopes(&[Scope::Approve]),
        csrf: "csrf".into(),
        pairing_id: None,
        created_at: at(0),
        last_seen_at: at(0),
        expires_at: at(1),
        revoked_at: None,
    };
    s.insert_session(&session, Vec::new()).await.unwrap();
    f.edit("UPDATE web_sessions SET scopes = 'root' WHERE id = 'ses_1'")
        .await;
    let err = s.session_by_hash(&[1; 32]).await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt(why) if why.contains("scopes")),
        "{err:?}"
    );
}

#[tokio::test]
async fn oauth_access_tokens_keep_their_binding() {
    let f = open().await;
    let s = &f.store;
    let mut t = token("tok_o", "mcp", &[Scope::Request]);
    t.oauth = Some(OAuthBinding {
        client_id: "cli_1".into(),
        audience: "http://127.0.0.1:7700/mcp".into(),
        family_id: "fam_1".into(),
    });
    t.person = Some("alice".into());
    s.insert_token(&t, Vec::new()).await.unwrap();
    let back = s.token_by_hash(&t.secret_hash).await.unwrap().unwrap();
    assert_eq!(back, t);
    // OAuth access tokens are not listed with API tokens.
    assert!(s.live_tokens().await.unwrap().is_empty());
}

#[tokio::test]
async fn requests_budgets_decisions_and_approvals() {
    let f = open().await;
    let s = &f.store;
    s.insert_token(&token("tok_r", "agent", &[Scope::Request]), Vec::new())
        .await
        .unwrap();
    let budget = |adding| {
        Some(PendingBudget {
            max_count: 2,
            max_old_content: 100,
            adding,
        })
    };
    // insert_permission: counted against the budget; over it, nothing is stored.
    for (id, created) in [("req_1", 1), ("req_2", 2)] {
        let out = s
            .insert_permission(
                &permission(id, "tok_r", "pending", created),
                entry("permission.created", id),
                budget(40),
            )
            .await
            .unwrap();
        assert!(matches!(out, Inserted::Stored(ref rows) if rows.len() == 1));
    }
    let out = s
        .insert_permission(
            &permission("req_3", "tok_r", "pending", 3),
            Vec::new(),
            budget(0),
        )
        .await
        .unwrap();
    assert!(matches!(
        out,
        Inserted::OverBudget {
            pending: 2,
            old_content: 80
        }
    ));
    assert!(s.permission("req_3").await.unwrap().is_none());
    let mut allowed = permission("req_0", "tok_r", "allowed", 0);
    allowed.decided_at = Some(at(0));
    allowed.decided_by = Some(r#"{"source":"rule"}"#.into());
    s.insert_permission(&allowed, Vec::new(), None)
        .await
        .unwrap();
    // permission, list_permissions (status filter, cursor), decided_permissions
    assert_eq!(
        s.permission("req_1").await.unwrap().unwrap(),
        permission("req_1", "tok_r", "pending", 1)
    );
    let ids = |rows: Vec<PermissionRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_permissions(None, None, 10).await.unwrap()),
        ["req_0", "req_1", "req_2"]
    );
    assert_eq!(
        ids(s
            .list_permissions(Some(Status::Pending), None, 10)
            .await
            .unwrap()),
        ["req_1", "req_2"]
    );
    assert_eq!(
        ids(s
            .list_permissions(None, Some((at(1), "req_1".into())), 10)
            .await
            .unwrap()),
        ["req_2"]
    );
    assert_eq!(
        ids(s.decided_permissions(None, 10).await.unwrap()),
        ["req_0"]
    );
    // due_permissions, next_deadline
    assert_eq!(s.next_deadline().await.unwrap(), Some(at(60_001)));
    assert!(s.due_permissions(at(60_000)).await.unwrap().is_empty());
    assert_eq!(
        s.due_permissions(at(60_002)).await.unwrap(),
        ["req_1", "req_2"]
    );
    // add_approval, approvals: each approver once; none once decided.
    let (names, rows) = s
        .add_approval(
            "req_2",
            "tok_x",
            "alice",
            at(3),
            entry("permission.approved", "req_2"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((names, rows.len()), (vec!["alice".to_owned()], 1));
    let err = s
        .add_approval("req_2", "tok_x", "alice", at(4), Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict(Conflict::Approval)),
        "{err:?}"
    );
    s.add_approval("req_2", "tok_y", "bob", at(5), Vec::new())
        .await
        .unwrap();
    assert_eq!(s.approvals("req_2").await.unwrap(), ["alice", "bob"]);
    // decide_permission: the first writer wins, with the rules it remembers.
    let rule = RuleRow {
        id: "rule_1".into(),
        spec: r#"{"action":"allow","kind":"shell","pattern":"ls"}"#.into(),
        origin: r#"{"source":"api"}"#.into(),
        created_at: at(6),
    };
    let decided = |status: &str| Decided {
        id: "req_1".into(),
        status: Status::parse(status).unwrap(),
        at: at(6),
        by: r#"{"source":"person"}"#.into(),
        message: Some("ok".into()),
    };
    let rows = s
        .decide_permission(
            &decided("allowed"),
            std::slice::from_ref(&rule),
            entry("permission.decided", "req_1"),
        )
        .await
        .unwrap();
    assert_eq!(rows.map(|r| r.len()), Some(1));
    assert!(
        s.decide_permission(&decided("timeout"), &[], Vec::new())
            .await
            .unwrap()
            .is_none()
    );
    let req1 = s.permission("req_1").await.unwrap().unwrap();
    assert_eq!(
        (req1.status.as_str(), req1.message.as_deref()),
        ("allowed", Some("ok"))
    );
    // The decided request's budget is free again: one more fits.
    let out = s
        .insert_permission(
            &permission("req_3", "tok_r", "pending", 8),
            Vec::new(),
            budget(40),
        )
        .await
        .unwrap();
    assert!(matches!(out, Inserted::Stored(_)), "{out:?}");
    let out = s
        .insert_permission(
            &permission("req_4", "tok_r", "pending", 9),
            Vec::new(),
            budget(0),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            Inserted::OverBudget {
                pending: 2,
                old_content: 80
            }
        ),
        "{out:?}"
    );
    assert!(
        s.add_approval("req_1", "tok_z", "carol", at(7), Vec::new())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.rules().await.unwrap(), std::slice::from_ref(&rule));
    // add_rules, delete_rule
    let mut second = rule.clone();
    second.id = "rule_2".into();
    s.add_rules(
        std::slice::from_ref(&second),
        entry("rule.created", "rule_2"),
    )
    .await
    .unwrap();
    let err = s.add_rules(&[second], Vec::new()).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(Conflict::RuleId)), "{err:?}");
    assert!(
        s.delete_rule("rule_1", entry("rule.deleted", "rule_1"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(s.delete_rule("rule_1", Vec::new()).await.unwrap().is_none());
    assert_eq!(s.rules().await.unwrap().len(), 1);
}

/// A write that fails among others of its batch (here a request whose id is taken): where each
/// write has its own savepoint (SQLite) it alone fails; where a new request is one statement
/// without one (PostgreSQL) its batch is rolled back and told to try again. Either way nothing
/// is half-written, the chain has exactly the stored requests' entries, and the store goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_among_others_leaves_nothing_half_written() {
    let f = open().await;
    let s = f.store.clone();
    s.insert_token(&token("tok_r", "agent", &[Scope::Request]), Vec::new())
        .await
        .unwrap();
    let create = |s: Store, id: String, created: i64| async move {
        let out = s
            .insert_permission(
                &permission(&id, "tok_r", "pending", created),
                entry("permission.created", &id),
                None,
            )
            .await;
        (id, out)
    };
    create(s.clone(), "taken".into(), 1).await.1.unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let id = if i == 32 {
                "taken".to_owned()
            } else {
                format!("req_{i}")
            };
            tokio::spawn(create(s.clone(), id, 10 + i))
        })
        .collect();
    let (mut stored, mut retry) = (1, 0);
    for t in tasks {
        let (id, out) = t.await.unwrap();
        let row = s.permission(&id).await.unwrap();
        match out {
            Ok(_) => {
                assert_ne!(id, "taken", "a taken id was stored twice");
                assert!(row.is_some(), "{id}: acknowledged but not stored");
                stored += 1;
            }
            Err(_) if id == "taken" => {}
            Err(e) => {
                assert!(e.is_unavailable(), "{id}: {e}");
                assert!(row.is_none(), "{id}: refused but stored");
                retry += 1;
            }
        }
    }
    eprintln!("stored {stored}, told to try again {retry}");
    let chain = s.audit_after(0, 1000).await.unwrap();
    assert_eq!(chain.len(), stored, "one entry per stored request");
    let mut prev = agentgate::audit::GENESIS.to_vec();
    for (n, e) in chain.iter().enumerate() {
        assert_eq!(e.seq, n as i64 + 1);
        assert_eq!(e.prev_hash, prev);
        let hash = agentgate::audit::chain_hash(
            &prev,
            e.seq,
            e.at.as_millis(),
            &e.event,
            e.subject.as_deref(),
            &e.data,
        );
        assert_eq!(e.hash, hash.to_vec(), "entry {} is not chained", e.seq);
        prev = e.hash.clone();
    }
    create(s.clone(), "after".into(), 100).await.1.unwrap();
}

#[tokio::test]
async fn the_audit_chain_its_head_the_key_and_the_streams() {
    let f = open().await;
    let s = &f.store;
    let mut all = s.subscribe_audit();
    let mut own = s.subscribe_own();
    // append_audit, audit_after, audit_head: one chain, seq from 1, each linked to the last.
    let rows = s
        .append_audit(vec![
            NewAudit::of(at(1), "a.one", None, serde_json::json!({"n": 1})),
            NewAudit::of(at(2), "a.two", Some("x"), serde_json::json!({"n": 2})),
        ])
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(rows[0].prev_hash, agentgate::audit::GENESIS.to_vec());
    assert_eq!(rows[1].prev_hash, rows[0].hash);
    // publish: what was appended is told to this instance's streams (once, in order).
    s.publish(&rows);
    let mut heard: Vec<Arc<AuditRow>> = Vec::new();
    while heard.len() < 2 {
        heard.push(
            tokio::time::timeout(std::time::Duration::from_secs(5), all.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(heard.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(own.recv().await.unwrap().seq, 1);
    let stored = s.audit_after(0, 10).await.unwrap();
    assert_eq!(stored, rows);
    assert_eq!(s.audit_after(1, 10).await.unwrap(), rows[1..]);
    assert_eq!(
        s.audit_head().await.unwrap(),
        Some((2, rows[1].hash.clone()))
    );
    // use_audit_key, audit_key, audit_head_mac: keyed mode signs the head; another key is refused.
    assert_eq!(s.audit_key(), None);
    assert_eq!(s.audit_head_mac().await.unwrap(), None);
    s.use_audit_key([7; 32]).await.unwrap();
    assert_eq!(s.audit_key(), Some([7; 32]));
    let mac = s.audit_head_mac().await.unwrap().unwrap();
    assert_eq!(
        mac,
        agentgate::audit::head_mac(&[7; 32], 2, &rows[1].hash).to_vec()
    );
    let err = s.use_audit_key([8; 32]).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict(Conflict::AuditKey)),
        "{err:?}"
    );
    s.append_audit(entry("a.three", "y")).await.unwrap();
    let (seq, hash) = s.audit_head().await.unwrap().unwrap();
    assert_eq!(seq, 3);
    assert_eq!(
        s.audit_head_mac().await.unwrap().unwrap(),
        agentgate::audit::head_mac(&[7; 32], 3, &hash).to_vec()
    );
    // One append of more rows than one INSERT could bind (7 parameters each: 35,000, past
    // SQLite's 32,766): every entry stored, in order, each linked to the one before, and the head
    // signed at the last.
    let many: Vec<NewAudit> = (0..5_000)
        .map(|i| NewAudit::of(at(10 + i), "a.many", None, serde_json::json!({"n": i})))
        .collect();
    let rows = s.append_audit(many).await.unwrap();
    assert_eq!(rows.len(), 5_000);
    let stored = s.audit_after(3, 10_000).await.unwrap();
    assert_eq!(stored, rows);
    let mut prev = hash;
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(e.seq, 4 + i as i64);
        assert_eq!(e.prev_hash, prev, "entry {} is not linked", e.seq);
        prev = e.hash.clone();
    }
    assert_eq!(s.audit_head().await.unwrap(), Some((5_003, prev.clone())));
    assert_eq!(
        s.audit_head_mac().await.unwrap().unwrap(),
        agentgate::audit::head_mac(&[7; 32], 5_003, &prev).to_vec()
    );
}

#[tokio::test]
async fn sessions_and_pairings() {
    let f = open().await;
    let s = &f.store;
    let session = |id: &str, hash: u8, pairing: Option<&str>| SessionRow {
        id: id.into(),
        secret_hash: [hash; 32],
        name: "owner (web)".into(),
        scopes: scopes(&[Scope::Approve]),
        csrf: "csrf".into(),
        pairing_id: pairing.map(str::to_owned),
        created_at: at(0),
        last_seen_at: at(0),
        expires_at: at(1_000_000),
        revoked_at: None,
    };
    // insert_session, session_by_hash, touch_session (never backwards), revoke_session
    s.insert_session(
        &session("ses_1", 1, None),
        entry("session.signed_in", "ses_1"),
    )
    .await
    .unwrap();
    assert_eq!(
        s.session_by_hash(&[1; 32]).await.unwrap().unwrap(),
        session("ses_1", 1, None)
    );
    s.touch_session("ses_1", at(50)).await.unwrap();
    s.touch_session("ses_1", at(40)).await.unwrap();
    let seen = s.session_by_hash(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(seen.last_seen_at, at(50));
    s.revoke_session("ses_1", at(60), Vec::new()).await.unwrap();
    s.revoke_session("ses_1", at(70), Vec::new()).await.unwrap();
    let gone = s.session_by_hash(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(gone.revoked_at, Some(at(60)));
    // insert_pairing, live_pairings, redeem_pairing (once, before expiry), revoke_pairing
    let pairing = |id: &str, hash: u8| PairingRow {
        id: id.into(),
        name: "phone".into(),
        code_hash: [hash; 32],
        scopes: scopes(&[Scope::Read, Scope::Approve]),
        created_at: at(0),
        expires_at: at(600_000),
        created_by: "owner".into(),
        redeemed_at: None,
        revoked_at: None,
    };
    s.insert_pairing(&pairing("pair_1", 3), Vec::new())
        .await
        .unwrap();
    s.insert_pairing(&pairing("pair_2", 4), Vec::new())
        .await
        .unwrap();
    assert_eq!(s.live_pairings().await.unwrap().len(), 2);
    let redeem = |hash: u8, when: i64, session_hash: u8| async move {
        s.redeem_pairing(
            &[hash; 32],
            at(when),
            move |p| session(&format!("ses_{session_hash}"), session_hash, Some(&p.id)),
            |_| Vec::new(),
        )
        .await
    };
    let (p, created) = redeem(3, 10, 5).await.unwrap().unwrap();
    assert_eq!(
        (p.id.as_str(), created.pairing_id.as_deref()),
        ("pair_1", Some("pair_1"))
    );
    assert!(redeem(3, 11, 6).await.unwrap().is_none(), "links work once");
    assert!(redeem(4, 600_001, 7).await.unwrap().is_none(), "expired");
    let ended = s
        .revoke_pairing("pair_1", at(20), |_| Vec::new())
        .await
        .unwrap();
    assert_eq!(ended, ["ses_5"]);
    let err = s
        .revoke_pairing("pair_1", at(21), |_| Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    assert_eq!(s.live_pairings().await.unwrap().len(), 1);
}

#[tokio::test]
async fn passphrase_failures_are_claimed_by_compare_and_set() {
    let f = open().await;
    let s = &f.store;
    let one = Failures {
        count: 1,
        locked_until: at(1_000),
    };
    // passphrase_failures, swap_passphrase_failures: one claim wins, a stale one loses.
    assert_eq!(s.passphrase_failures("127.0.0.1").await.unwrap(), None);
    assert!(
        s.swap_passphrase_failures("127.0.0.1", None, one)
            .await
            .unwrap()
    );
    assert!(
        !s.swap_passphrase_failures("127.0.0.1", None, one)
            .await
            .unwrap()
    );
    let two = Failures {
        count: 2,
        locked_until: at(3_000),
    };
    assert!(
        s.swap_passphrase_failures("127.0.0.1", Some(one), two)
            .await
            .unwrap()
    );
    assert!(
        !s.swap_passphrase_failures("127.0.0.1", Some(one), two)
            .await
            .unwrap()
    );
    assert_eq!(s.passphrase_failures("127.0.0.1").await.unwrap(), Some(two));
    // clear_passphrase_failures: this source, and lock-outs that ended a day ago.
    assert!(s.swap_passphrase_failures("::1", None, one).await.unwrap());
    s.clear_passphrase_failures("127.0.0.1", at(1_000 + 86_400_001))
        .await
        .unwrap();
    assert_eq!(s.passphrase_failures("127.0.0.1").await.unwrap(), None);
    assert_eq!(s.passphrase_failures("::1").await.unwrap(), None);
}

/// Consent forms: held (expired ones and the oldest beyond the cap go), taken once per CSRF
/// token (which the take replaces), ended once.
#[tokio::test]
async fn consent_forms_are_taken_once_per_token_and_ended_once() {
    let f = open().await;
    let s = &f.store;
    let hash =
        |t: &str| -> [u8; 32] { <sha2::Sha256 as sha2::Digest>::digest(t.as_bytes()).into() };
    let form = |id: &str, csrf: &str, expires: i64| ConsentFormRow {
        id: id.into(),
        csrf_hash: hash(csrf).to_vec(),
        request: format!(r#"{{"form":"{id}"}}"#),
        expires_at: at(expires),
    };
    for (id, expires) in [("authz_old", 50), ("authz_1", 1000), ("authz_2", 2000)] {
        s.hold_consent_form(&form(id, "c0", expires), at(0), 3)
            .await
            .unwrap();
    }
    // Held at 100 with a cap of 3: the expired one goes, then the oldest beyond the cap.
    s.hold_consent_form(&form("authz_3", "c0", 3000), at(100), 2)
        .await
        .unwrap();
    let take = |id: &'static str, csrf: &'static str, next: &'static str, now: i64| async move {
        s.take_consent_form(id, &hash(csrf), &hash(next), at(now))
            .await
            .unwrap()
    };
    assert!(
        take("authz_old", "c0", "c1", 10).await.is_none(),
        "expired and gone"
    );
    assert!(
        take("authz_1", "c0", "c1", 100).await.is_none(),
        "beyond the cap"
    );
    let taken = take("authz_2", "c0", "c1", 100).await.unwrap();
    assert_eq!(taken.request, r#"{"form":"authz_2"}"#);
    assert_eq!(taken.csrf_hash, hash("c1").to_vec());
    assert!(
        take("authz_2", "c0", "c2", 100).await.is_none(),
        "a used token"
    );
    assert!(
        take("authz_2", "c1", "c2", 2000).await.is_none(),
        "at its expiry"
    );
    assert!(take("authz_2", "c1", "c2", 1999).await.is_some());
    assert!(take("authz_3", "wrong", "c2", 100).await.is_none());
    assert!(s.end_consent_form("authz_2").await.unwrap());
    assert!(!s.end_consent_form("authz_2").await.unwrap(), "ended once");
    assert!(take("authz_2", "c2", "c3", 100).await.is_none());
}

fn client(id: &str, created: i64) -> ClientRow {
    ClientRow {
        id: id.into(),
        secret_hash: None,
        name: Some("Inspector".into()),
        redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
        auth_method: "none".into(),
        application_type: "native".into(),
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scope: None,
        metadata: "{}".into(),
        created_at: at(created),
        deleted_at: None,
    }
}

#[tokio::test]
async fn oauth_clients_grants_codes_and_refresh_families() {
    let f = open().await;
    let s = &f.store;
    let cap = |max, now| ClientCap {
        max,
        unauthorized: max,
        stale_before: at(now - 100),
        now: at(now),
    };
    // insert_client (capped; never-authorized stale clients make room), client, live_clients
    s.insert_client(&client("cli_1", 0), cap(2, 0), Vec::new())
        .await
        .unwrap();
    s.insert_client(&client("cli_2", 1), cap(2, 1), Vec::new())
        .await
        .unwrap();
    let err = s
        .insert_client(&client("cli_3", 2), cap(2, 2), Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict(Conflict::ClientCap)),
        "{err:?}"
    );
    s.insert_client(&client("cli_3", 500), cap(2, 500), Vec::new())
        .await
        .unwrap();
    assert_eq!(
        s.live_clients()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        ["cli_3"]
    );
    assert_eq!(
        s.client("cli_3").await.unwrap().unwrap(),
        client("cli_3", 500)
    );
    assert!(s.client("cli_1").await.unwrap().is_none());
    // insert_grant, live_grants, revoke_grant
    let grant = GrantRow {
        id: "grant_1".into(),
        client_id: "cli_3".into(),
        scopes: scopes(&[Scope::Request]),
        created_at: at(501),
        revoked_at: None,
    };
    s.insert_grant(&grant, Vec::new()).await.unwrap();
    assert_eq!(
        s.live_grants(Some("cli_3")).await.unwrap(),
        std::slice::from_ref(&grant)
    );
    assert_eq!(s.live_grants(None).await.unwrap().len(), 1);
    assert!(s.live_grants(Some("cli_9")).await.unwrap().is_empty());
    let revoked = s
        .revoke_grant("grant_1", at(502), |_| Vec::new())
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at(502)));
    let err = s
        .revoke_grant("grant_1", at(503), |_| Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    // insert_code, use_code (first use wins; the second revokes what it issued)
    let code = CodeRow {
        code_hash: [11; 32],
        client_id: "cli_3".into(),
        redirect_uri: "http://127.0.0.1:9/cb".into(),
        code_challenge: "challenge".into(),
        resource: "http://127.0.0.1:7700/mcp".into(),
        scopes: scopes(&[Scope::Request]),
        family_id: "fam_1".into(),
        created_at: at(510),
        expires_at: at(70_000),
    };
    s.insert_code(&code, Vec::new()).await.unwrap();
    let used = s
        .use_code(&[11; 32], at(520), |_| Vec::new())
        .await
        .unwrap();
    assert!(
        matches!(used, CodeUse::Fresh(ref c) if *c == code),
        "{used:?}"
    );
    // issue_tokens: a family, its access token and refresh token, in one transaction.
    let family = FamilyRow {
        id: "fam_1".into(),
        client_id: "cli_3".into(),
        resource: code.resource.clone(),
        scopes: code.scopes,
        created_at: at(520),
        revoked_at: None,
    };
    let mut access = token("tok_acc1", "mcp-1", &[Scope::Request]);
    access.oauth = Some(OAuthBinding {
        client_id: "cli_3".into(),
        audience: code.resource.clone(),
        family_id: "fam_1".into(),
    });
    let refresh = |hash: u8| RefreshRow {
        token_hash: [hash; 32],
        family_id: "fam_1".into(),
        created_at: at(520),
        expires_at: at(1_000_000),
    };
    s.issue_tokens(Some(&family), &access, &refresh(21))
        .await
        .unwrap();
    // use_refresh: valid once; a reuse after the grace period revokes the family's tokens.
    let first = s
        .use_refresh(&[21; 32], at(530), 0, |_| Vec::new())
        .await
        .unwrap();
    assert!(
        matches!(first, RefreshUse::Valid(ref f) if f.id == "fam_1"),
        "{first:?}"
    );
    let mut access2 = access.clone();
    access2.id = "tok_acc2".into();
    access2.name = "mcp-2".into();
    access2.secret_hash = [22; 32];
    s.issue_tokens(None, &access2, &refresh(23)).await.unwrap();
    let unknown = s
        .use_refresh(&[99; 32], at(531), 0, |_| Vec::new())
        .await
        .unwrap();
    assert!(matches!(unknown, RefreshUse::Invalid), "{unknown:?}");
    let reused = s
        .use_refresh(&[21; 32], at(540), 0, |_| Vec::new())
        .await
        .unwrap();
    let RefreshUse::Reused(mut ids) = reused else {
        panic!("{reused:?}")
    };
    ids.sort();
    assert_eq!(ids, ["tok_acc1", "tok_acc2"]);
    // A revoked family issues nothing more.
    let err = s
        .issue_tokens(
            None,
            &token("tok_acc3", "mcp-3", &[Scope::Request]),
            &refresh(24),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    let again = s
        .use_code(&[11; 32], at(550), |_| Vec::new())
        .await
        .unwrap();
    assert!(matches!(again, CodeUse::Reused(_)), "{again:?}");
    assert!(matches!(
        s.use_code(&[12; 32], at(550), |_| Vec::new())
            .await
            .unwrap(),
        CodeUse::Unknown
    ));
    // revoke_oauth_token: only the client's own tokens; delete_client ends the rest.
    let mut live = token("tok_acc4", "mcp-4", &[Scope::Request]);
    live.oauth = Some(OAuthBinding {
        client_id: "cli_4".into(),
        audience: code.resource.clone(),
        family_id: "fam_4".into(),
    });
    s.insert_client(&client("cli_4", 560), cap(5, 560), Vec::new())
        .await
        .unwrap();
    let family4 = FamilyRow {
        id: "fam_4".into(),
        client_id: "cli_4".into(),
        ..family.clone()
    };
    let refresh4 = RefreshRow {
        token_hash: [41; 32],
        family_id: "fam_4".into(),
        ..refresh(0)
    };
    s.issue_tokens(Some(&family4), &live, &refresh4)
        .await
        .unwrap();
    assert!(
        s.revoke_oauth_token(&live.secret_hash, "cli_3", at(570))
            .await
            .unwrap()
            .is_empty(),
        "not cli_3's token"
    );
    assert_eq!(
        s.revoke_oauth_token(&live.secret_hash, "cli_4", at(570))
            .await
            .unwrap(),
        ["tok_acc4"]
    );
    let mut live5 = live.clone();
    live5.id = "tok_acc5".into();
    live5.name = "mcp-5".into();
    live5.secret_hash = [51; 32];
    s.issue_tokens(
        None,
        &live5,
        &RefreshRow {
            token_hash: [52; 32],
            ..refresh4.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.delete_client("cli_4", at(580), Vec::new()).await.unwrap(),
        ["tok_acc5"]
    );
    let err = s
        .delete_client("cli_4", at(581), Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
}

/// Every method the store declares (the `delegate!` lists and `Store`'s own) is named in this
/// file, so a method added without its contract test fails here.
#[test]
fn the_suite_names_every_store_method() {
    let here = include_str!("store.rs");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    let mut missing = Vec::new();
    for file in ["mod.rs", "web.rs", "oauth.rs"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for line in text.lines() {
            let line = line.trim_start();
            let Some(rest) = line
                .strip_prefix("pub async fn ")
                .or_else(|| line.strip_prefix("pub fn "))
            else {
                continue;
            };
            let name = rest.split(['(', '<']).next().unwrap();
            if name.starts_with('$') {
                continue; // the delegate! macro itself
            }
            if ["db", "again", "is_unavailable", "of", "parse"].contains(&name) {
                continue; // errors' and rows' helpers, not store methods
            }
            if !here.contains(&format!(".{name}(")) && !here.contains(&format!("::{name}(")) {
                missing.push(format!("{file}: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "store methods without a contract test: {missing:?}"
    );
}
