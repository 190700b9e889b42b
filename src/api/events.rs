//! The names of audit events, which are also the event stream's event types. Named once here for
//! the server that writes them and the clients that read them.

/// A request was asked (decided at once or pending).
pub const PERMISSION_CREATED: &str = "permission.created";
/// A request was decided: by a rule, a person or its deadline.
pub const PERMISSION_DECIDED: &str = "permission.decided";
/// One approval of an N-of-M request.
pub const PERMISSION_APPROVED: &str = "permission.approved";
/// A request refused because its credential's pending budget is spent.
pub const PERMISSION_REFUSED: &str = "permission.refused";
/// A rule was added (through the API or remembered from a reply).
pub const RULE_CREATED: &str = "rule.created";
/// A stored rule was deleted.
pub const RULE_DELETED: &str = "rule.deleted";
/// A token was created (never its secret).
pub const TOKEN_CREATED: &str = "token.created";
/// A token was revoked.
pub const TOKEN_REVOKED: &str = "token.revoked";
/// The owner passphrase was set for the first time.
pub const PASSPHRASE_SET: &str = "passphrase.set";
/// The owner passphrase was changed.
pub const PASSPHRASE_CHANGED: &str = "passphrase.changed";
/// The owner signed in to the web inbox.
pub const SESSION_SIGNED_IN: &str = "session.signed_in";
/// A web session was signed out.
pub const SESSION_SIGNED_OUT: &str = "session.signed_out";
/// A pairing link was created.
pub const PAIRING_CREATED: &str = "pairing.created";
/// A pairing link was used: a device signed in.
pub const PAIRING_REDEEMED: &str = "pairing.redeemed";
/// A pairing was revoked (its sessions ended).
pub const PAIRING_REVOKED: &str = "pairing.revoked";
/// An OAuth client registered.
pub const OAUTH_CLIENT_REGISTERED: &str = "oauth.client_registered";
/// An OAuth client was deleted.
pub const OAUTH_CLIENT_DELETED: &str = "oauth.client_deleted";
/// The owner approved a client's sign-in (a code was issued).
pub const OAUTH_CONSENT_GRANTED: &str = "oauth.consent_granted";
/// The owner asked to remember a client's consent.
pub const OAUTH_CONSENT_REMEMBERED: &str = "oauth.consent_remembered";
/// A remembered consent was revoked.
pub const OAUTH_CONSENT_REVOKED: &str = "oauth.consent_revoked";
/// A grant family was revoked because a code or refresh token came back.
pub const OAUTH_FAMILY_REVOKED: &str = "oauth.family_revoked";
