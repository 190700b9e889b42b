//! Scopes and their hierarchy: the one place that says which scope implies which.
//!
//! `admin` ⊃ every scope; `write` ⊃ `read`; `approve` ⊃ `read`; `execute` and `request` imply
//! nothing but themselves. Scopes are only ever taken from a verified credential; nothing here
//! parses request headers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One capability a credential can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Tokens, rules and settings; implies every other scope.
    Admin,
    /// Write through gateway routes; implies `read`.
    Write,
    /// Read-only access.
    Read,
    /// A person answering permission requests; implies `read`.
    Approve,
    /// Execute through gateway routes (shells, sessions).
    Execute,
    /// An agent asking for permission.
    Request,
}

impl Scope {
    /// Every scope, broadest first.
    pub const ALL: [Scope; 6] = [
        Scope::Admin,
        Scope::Write,
        Scope::Read,
        Scope::Approve,
        Scope::Execute,
        Scope::Request,
    ];

    /// The wire name of the scope.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Write => "write",
            Scope::Read => "read",
            Scope::Approve => "approve",
            Scope::Execute => "execute",
            Scope::Request => "request",
        }
    }

    /// Whether holding `self` grants `other`. Reflexive and transitive.
    pub const fn implies(self, other: Scope) -> bool {
        matches!(
            (self, other),
            (Scope::Admin, _)
                | (Scope::Write, Scope::Write | Scope::Read)
                | (Scope::Approve, Scope::Approve | Scope::Read)
                | (Scope::Read, Scope::Read)
                | (Scope::Execute, Scope::Execute)
                | (Scope::Request, Scope::Request)
        )
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The valid scope names, comma separated, for error messages.
    pub fn valid_names() -> String {
        Scope::ALL.map(Scope::as_str).join(", ")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not one of [`Scope::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope `{name}`; valid scopes are: {}", Scope::valid_names())]
pub struct UnknownScope {
    /// The name that was given.
    pub name: String,
}

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope { name: s.to_owned() })
    }
}

/// The scopes one credential holds, as a bit set: checking a route is a few instructions.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// No scopes at all.
    pub const EMPTY: ScopeSet = ScopeSet(0);

    /// Whether the set holds `scope` itself (not through the hierarchy).
    pub const fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Adds one scope.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// Whether any held scope implies `required`.
    pub fn allows(self, required: Scope) -> bool {
        self.iter().any(|held| held.implies(required))
    }

    /// Whether every scope of `other` is allowed by this set: the no-escalation rule for a
    /// credential that creates another credential.
    pub fn covers(self, other: ScopeSet) -> bool {
        other.iter().all(|wanted| self.allows(wanted))
    }

    /// The held scopes, broadest first.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |s| self.contains(s.to_owned()))
    }

    /// Whether the set holds no scope.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The held scopes as a vector, broadest first.
    pub fn to_vec(self) -> Vec<Scope> {
        self.iter().collect()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = ScopeSet::EMPTY;
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(","))
    }
}

/// The form [`Display`](fmt::Display) writes: names separated by commas (none: empty).
impl FromStr for ScopeSet {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .filter(|name| !name.is_empty())
            .map(str::parse::<Scope>)
            .collect()
    }
}

impl TryFrom<String> for ScopeSet {
    type Error = UnknownScope;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_set_reads_back_what_it_writes() {
        for set in [
            ScopeSet::EMPTY,
            [Scope::Admin].into_iter().collect(),
            [Scope::Read, Scope::Request].into_iter().collect(),
        ] {
            assert_eq!(set.to_string().parse::<ScopeSet>(), Ok(set));
        }
        assert!("read,bogus".parse::<ScopeSet>().is_err());
    }

    fn any_scope() -> impl Strategy<Value = Scope> {
        (0..Scope::ALL.len()).prop_map(|i| Scope::ALL[i])
    }

    fn any_set() -> impl Strategy<Value = ScopeSet> {
        proptest::collection::vec(any_scope(), 0..6).prop_map(ScopeSet::from_iter)
    }

    #[test]
    fn the_hierarchy_is_exactly_the_documented_one() {
        use Scope::*;
        let expected: &[(Scope, &[Scope])] = &[
            (Admin, &[Admin, Write, Read, Approve, Execute, Request]),
            (Write, &[Write, Read]),
            (Read, &[Read]),
            (Approve, &[Approve, Read]),
            (Execute, &[Execute]),
            (Request, &[Request]),
        ];
        for (held, implied) in expected {
            for other in Scope::ALL {
                assert_eq!(
                    held.implies(other),
                    implied.contains(&other),
                    "{held} implies {other}"
                );
            }
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_valid_ones() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        let err = "root".parse::<Scope>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown scope `root`; valid scopes are: admin, write, read, approve, execute, request"
        );
        assert!(
            "Admin".parse::<Scope>().is_err(),
            "names are case-sensitive"
        );
    }

    #[test]
    fn request_cannot_approve_and_approve_cannot_request() {
        assert!(!Scope::Request.implies(Scope::Approve));
        assert!(!Scope::Approve.implies(Scope::Request));
        assert!(!Scope::Write.implies(Scope::Approve));
        assert!(!Scope::Execute.implies(Scope::Read));
    }

    proptest! {
        #[test]
        fn implies_is_reflexive(a in any_scope()) {
            prop_assert!(a.implies(a));
        }

        #[test]
        fn implies_is_transitive(a in any_scope(), b in any_scope(), c in any_scope()) {
            if a.implies(b) && b.implies(c) {
                prop_assert!(a.implies(c));
            }
        }

        #[test]
        fn implies_is_antisymmetric(a in any_scope(), b in any_scope()) {
            if a.implies(b) && b.implies(a) {
                prop_assert_eq!(a, b);
            }
        }

        #[test]
        fn admin_implies_everything_and_only_admin_implies_admin(a in any_scope()) {
            prop_assert!(Scope::Admin.implies(a));
            prop_assert_eq!(a.implies(Scope::Admin), a == Scope::Admin);
        }

        #[test]
        fn a_set_allows_exactly_what_one_of_its_members_implies(set in any_set(), r in any_scope()) {
            prop_assert_eq!(set.allows(r), set.iter().any(|s| s.implies(r)));
            prop_assert!(!ScopeSet::EMPTY.allows(r));
        }

        #[test]
        fn covers_is_monotone_and_never_escalates(a in any_set(), b in any_set(), extra in any_scope()) {
            // A set always covers itself, and covering is transitive through unions.
            prop_assert!(a.covers(a));
            let mut bigger = a;
            bigger.insert(extra);
            prop_assert!(bigger.covers(a));
            // Whatever `a` covers, it allows scope by scope: no path to a scope it lacks.
            if a.covers(b) {
                for s in b.iter() {
                    prop_assert!(a.allows(s));
                }
            }
            // Only a set holding admin covers admin.
            let admin: ScopeSet = [Scope::Admin].into_iter().collect();
            prop_assert_eq!(a.covers(admin), a.contains(Scope::Admin));
        }

        #[test]
        fn set_display_and_iteration_agree(set in any_set()) {
            let rebuilt: ScopeSet = set.to_string().split(',').filter(|s| !s.is_empty())
                .map(|s| s.parse::<Scope>()).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(rebuilt, set);
        }
    }
}
