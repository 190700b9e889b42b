//! The owner's side of the OAuth authorization server: registered clients and remembered
//! consents, as `/api/v1/oauth/*` answers them.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// A client as the registration response and the CLI show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// `cli_…`.
    pub client_id: String,
    /// Self-asserted name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: String,
    /// Registration time (RFC 3339).
    pub created_at: Timestamp,
}

/// A remembered consent as the CLI shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantInfo {
    /// `grt_…`.
    pub id: String,
    /// The client.
    pub client_id: String,
    /// Its name, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Space-separated scopes.
    pub scope: String,
    /// When the owner allowed it.
    pub created_at: Timestamp,
}

/// `GET /api/v1/oauth/clients`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientList {
    /// Live clients, oldest first.
    pub clients: Vec<ClientInfo>,
}

/// `DELETE /api/v1/oauth/clients/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedClient {
    /// The deleted client.
    pub deleted: String,
    /// How many of its access tokens stopped working.
    pub access_tokens_revoked: usize,
}

/// `GET /api/v1/oauth/grants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantList {
    /// Live remembered consents.
    pub grants: Vec<GrantInfo>,
}

/// `DELETE /api/v1/oauth/grants/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokedGrant {
    /// The revoked consent.
    pub revoked: String,
}
