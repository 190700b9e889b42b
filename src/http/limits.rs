//! The bounds every listener puts on what a client sends, shared by hyper's connection loop
//! (`serve.rs`) and a gateway's fast lane (`lane.rs`).

use std::time::Duration;

/// How long a client may take to send a request's head, or stay idle between requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Most headers in one request; more is answered 431. hyper's own bound, left unset on the
/// builder: setting it, even to this, costs a slower head parse on every request.
pub const MAX_HEADERS: usize = 100;
