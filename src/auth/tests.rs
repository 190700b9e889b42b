use super::*;

fn principal(scopes: &[Scope]) -> Principal {
    Principal {
        token_id: "tok_0".into(),
        name: "creator".into(),
        scopes: scopes.iter().copied().collect(),
        expires_at: None,
        kind: CredentialKind::Token,
        oauth: None,
        person: None,
    }
}

async fn authenticator() -> (Authenticator, tempfile::TempDir, Clock) {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::store::DatabaseUrl::Sqlite(dir.path().join("t.db"));
    let store = Store::open(&url).await.unwrap();
    let clock = Clock::manual(Timestamp::from_millis(1_800_000_000_000));
    (Authenticator::new(store, clock.clone()), dir, clock)
}

/// The bootstrapped owner, as a principal.
async fn owner(auth: &Authenticator, dir: &Path) -> Arc<Principal> {
    let (path, _) = auth.bootstrap_owner(dir).await.unwrap();
    let secret = std::fs::read_to_string(path).unwrap();
    auth.authenticate(secret.trim()).await.unwrap()
}

fn create(name: &str, scopes: &[Scope]) -> CreateToken {
    CreateToken {
        name: name.into(),
        scopes: scopes.to_vec(),
        expires_in: None,
        person: None,
    }
}

#[tokio::test]
async fn a_narrower_creator_cannot_grant_what_it_lacks() {
    let (auth, dir, _) = authenticator().await;
    // Not admin at all: cannot create tokens, even of its own scope.
    let writer = principal(&[Scope::Write, Scope::Approve]);
    let err = auth
        .create_token(&writer, create("x", &[Scope::Read]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Escalation(Scope::Admin)), "{err:?}");
    // An admin creates anything; escalation is checked scope by scope.
    let admin = owner(&auth, dir.path()).await;
    auth.create_token(&admin, create("all", &Scope::ALL))
        .await
        .unwrap();
    assert!(
        auth.list_tokens()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == "all")
    );
}

#[tokio::test]
async fn tokens_default_to_ninety_days_and_expire_on_the_next_request() {
    let (auth, dir, clock) = authenticator().await;
    let admin = owner(&auth, dir.path()).await;
    let (secret, row) = auth
        .create_token(&admin, create("ci", &[Scope::Read]))
        .await
        .unwrap();
    assert_eq!(
        row.expires_at,
        Some(clock.now().plus(Duration::from_secs(90 * 86_400)))
    );
    let who = auth.authenticate(secret.expose()).await.unwrap();
    assert_eq!(who.name, "ci");
    clock.advance(Duration::from_secs(90 * 86_400));
    let err = auth.authenticate(secret.expose()).await.unwrap_err();
    assert!(
        matches!(err, Error::Unauthenticated(Rejection::Expired)),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_last_live_admin_cannot_be_revoked_but_others_can() {
    let (auth, dir, _) = authenticator().await;
    let (path, created) = auth.bootstrap_owner(dir.path()).await.unwrap();
    assert!(created);
    let owner_secret = std::fs::read_to_string(&path).unwrap();
    let owner = auth.authenticate(owner_secret.trim()).await.unwrap();
    let err = auth
        .revoke_token(&owner.token_id, "test")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LastAdmin(_)), "{err:?}");
    let (_, second) = auth
        .create_token(&owner, create("admin2", &[Scope::Admin]))
        .await
        .unwrap();
    auth.revoke_token(&owner.token_id, "test").await.unwrap();
    let err = auth.authenticate(owner_secret.trim()).await.unwrap_err();
    assert!(
        matches!(err, Error::Unauthenticated(Rejection::Revoked)),
        "{err:?}"
    );
    let err = auth
        .revoke_token(&owner.token_id, "test")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TokenNotFound(_)), "{err:?}");
    assert!(matches!(
        auth.revoke_token(&second.id, "test").await,
        Err(Error::LastAdmin(_))
    ));
    // A second start finds tokens and does not mint another owner.
    let (_, created) = auth.bootstrap_owner(dir.path()).await.unwrap();
    assert!(!created);
}

#[test]
fn names_are_validated() {
    for good in ["ci", "laptop-1", "a.b_c", &"x".repeat(64)] {
        validate_name(good).unwrap();
    }
    for bad in [
        "",
        "has space",
        "semi;colon",
        "tok_abc",
        "ünï",
        &"x".repeat(65),
    ] {
        assert!(validate_name(bad).is_err(), "{bad}");
    }
}
