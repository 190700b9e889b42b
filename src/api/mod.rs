//! Wire types of the HTTP API, shared by the server, the CLI and the tests.
//!
//! Owns the JSON shapes and the parsing of values that arrive as text (`expires_in`). It does no IO
//! and knows nothing of the store or of axum.

use std::fmt;
use std::time::Duration;

use agentgate_policy::Scope;
use serde::{Deserialize, Deserializer, Serialize};

use crate::clock::Timestamp;

mod bridges;
pub mod events;
mod oauth;
mod permissions;
pub use bridges::*;
pub use oauth::*;
pub use permissions::*;

/// The one error shape of the whole API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// A stable machine code, such as `insufficient_scope`.
    pub error: String,
    /// A human sentence saying what went wrong and, where it helps, what to do.
    pub message: String,
    /// For `insufficient_scope`: the scope the route requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<Scope>,
    /// For a bad request body: the JSON path of the offending field, such as `scopes[1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `already_decided`: the request as it was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<serde_json::Value>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` when the daemon answers.
    pub status: String,
}

/// `GET /api/v1/whoami`: who the presented credential is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoAmI {
    /// The token's id (`tok_…`), never its secret.
    pub id: String,
    /// The token's name.
    pub name: String,
    /// The scopes the token holds, as granted (not expanded through the hierarchy).
    pub scopes: Vec<Scope>,
    /// When the token stops working; `null` for never.
    pub expires_at: Option<Timestamp>,
}

/// `POST /api/v1/tokens` request body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A unique name among live tokens: letters, digits, `.`, `_`, `-`; at most 64 characters.
    pub name: String,
    /// At least one scope; each must be held by the creating credential.
    pub scopes: Vec<Scope>,
    /// How long the token lives; 90 days when absent.
    #[serde(default)]
    pub expires_in: Option<Expiry>,
    /// The person the token acts for, when not the owner: N-of-M approvals count people.
    #[serde(default)]
    pub person: Option<String>,
}

/// `POST /api/v1/tokens` response: the only time the secret is ever shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedToken {
    /// The secret bearer token (`agt_…`). Shown once; only its hash is stored.
    pub token: String,
    /// Everything else about the new token.
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenInfo {
    /// Stable id (`tok_…`), used to revoke.
    pub id: String,
    /// The token's name.
    pub name: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry; `null` for never.
    pub expires_at: Option<Timestamp>,
    /// Last time the token authenticated a request (recorded at most once a second).
    pub last_used_at: Option<Timestamp>,
    /// Whether the token has expired (it is kept, and listed, until revoked).
    pub expired: bool,
    /// The person it acts for; absent: the owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
}

/// `GET /api/v1/tokens` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenList {
    /// Live (not revoked) tokens, oldest first.
    pub tokens: Vec<TokenInfo>,
}

/// `DELETE /api/v1/tokens/{id}` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokedToken {
    /// The revoked token's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was revoked.
    pub revoked_at: Timestamp,
}

/// `PUT /api/v1/passphrase` request body.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPassphrase {
    /// The new owner passphrase; at least 8 characters.
    pub passphrase: String,
}

impl fmt::Debug for SetPassphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SetPassphrase { passphrase: [redacted] }")
    }
}

/// `PUT /api/v1/passphrase` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PassphraseSet {
    /// When the passphrase was stored.
    pub updated_at: Timestamp,
}

/// A token lifetime: a duration or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Expires after this long.
    After(Duration),
    /// Never expires (must be asked for explicitly).
    Never,
}

impl Expiry {
    /// The default lifetime of a token: 90 days.
    pub const DEFAULT: Expiry = Expiry::After(Duration::from_secs(90 * 86_400));
    /// The longest finite lifetime accepted: ten years.
    pub const MAX: Duration = Duration::from_secs(3650 * 86_400);

    /// Parses `never`, a number of seconds, or a number with a unit: `s`, `m`, `h`, `d`, `w`
    /// (`90d`, `12h`).
    pub fn parse(text: &str) -> Result<Expiry, String> {
        let text = text.trim();
        if text == "never" {
            return Ok(Expiry::Never);
        }
        let hint = "use `never`, a number of seconds, or a number with a unit s, m, h, d or w (such as `90d` or `12h`)";
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let unit_secs = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(format!("invalid expiry `{text}`: {hint}")),
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("invalid expiry `{text}`: {hint}"))?;
        Expiry::from_secs(n.saturating_mul(unit_secs))
            .map_err(|e| format!("invalid expiry `{text}`: {e}"))
    }

    /// A finite lifetime of `secs` seconds, between one second and [`Expiry::MAX`].
    pub fn from_secs(secs: u64) -> Result<Expiry, String> {
        if secs == 0 {
            return Err("a token must live at least one second".into());
        }
        if secs > Expiry::MAX.as_secs() {
            return Err("the longest finite lifetime is 3650d; use `never` for no expiry".into());
        }
        Ok(Expiry::After(Duration::from_secs(secs)))
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expiry::Never => f.write_str("never"),
            Expiry::After(d) => write!(f, "{}", d.as_secs()),
        }
    }
}

impl Serialize for Expiry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Expiry::Never => s.serialize_str("never"),
            Expiry::After(d) => s.serialize_u64(d.as_secs()),
        }
    }
}

impl<'de> Deserialize<'de> for Expiry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a number of seconds or a string such as \"90d\", \"12h\" or \"never\"",
            )
        })?;
        match raw {
            Raw::Secs(secs) => Expiry::from_secs(secs),
            Raw::Text(text) => Expiry::parse(&text),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_accepts_units_seconds_and_never() {
        assert_eq!(
            Expiry::parse("90d"),
            Ok(Expiry::After(Duration::from_secs(90 * 86_400)))
        );
        assert_eq!(
            Expiry::parse("12h"),
            Ok(Expiry::After(Duration::from_secs(43_200)))
        );
        assert_eq!(
            Expiry::parse("30m"),
            Ok(Expiry::After(Duration::from_secs(1800)))
        );
        assert_eq!(
            Expiry::parse("2w"),
            Ok(Expiry::After(Duration::from_secs(14 * 86_400)))
        );
        assert_eq!(
            Expiry::parse("3600"),
            Ok(Expiry::After(Duration::from_secs(3600)))
        );
        assert_eq!(Expiry::parse("never"), Ok(Expiry::Never));
        let json: Expiry = serde_json::from_str("60").unwrap();
        assert_eq!(json, Expiry::After(Duration::from_secs(60)));
    }

    #[test]
    fn expiry_rejects_nonsense_with_a_hint() {
        for bad in [
            "",
            "0",
            "0d",
            "-5",
            "5y",
            "1.5h",
            "forever",
            "99999999999999999999d",
            "3651d",
        ] {
            let err = Expiry::parse(bad).unwrap_err();
            assert!(err.starts_with("invalid expiry"), "{bad}: {err}");
        }
        assert!(serde_json::from_str::<Expiry>("-1").is_err());
        assert!(serde_json::from_str::<Expiry>("true").is_err());
        assert!(serde_json::from_str::<Expiry>("1.5").is_err());
    }
}

/// `POST /api/v1/pairings`: a one-time link that signs another device in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePairing {
    /// A name for the device [default: `paired device`]; shown as the approver in the audit log.
    #[serde(default)]
    pub name: Option<String>,
    /// Scopes the paired device gets [default: `approve`].
    #[serde(default)]
    pub scopes: Option<Vec<Scope>>,
    /// How long the link works [default: 10 minutes; at most 24 hours].
    #[serde(default)]
    pub expires_in: Option<Expiry>,
}

/// A pairing link, without its code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PairingInfo {
    /// `pair_…`.
    pub id: String,
    /// The device's name.
    pub name: String,
    /// Scopes the paired device gets.
    pub scopes: Vec<Scope>,
    /// Creation time.
    pub created_at: Timestamp,
    /// The link works until then.
    pub expires_at: Timestamp,
    /// Name of the credential that created it.
    pub created_by: String,
    /// When the link was used (links work once); the device stays signed in after that.
    pub redeemed_at: Option<Timestamp>,
}

/// The answer to `POST /api/v1/pairings`: the only time the link is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedPairing {
    /// The one-time link, built from the `Host` the request was sent to.
    pub url: String,
    /// The pairing.
    #[serde(flatten)]
    pub info: PairingInfo,
}

/// `GET /api/v1/pairings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairingList {
    /// Live (unrevoked) pairings, newest first.
    pub pairings: Vec<PairingInfo>,
}

/// `DELETE /api/v1/pairings/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokedPairing {
    /// The pairing.
    pub id: String,
    /// How many signed-in devices were signed out.
    pub sessions_ended: usize,
}
