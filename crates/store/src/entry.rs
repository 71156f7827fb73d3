//! The stored form of a [`DomainState`]: JSON with the policy as its canonical text, so a
//! stored entry re-parses through the same RFC parser as a fetched one.

use mtasts_core::cache::{
    Absence, CachedPolicy, DomainState, FailedFetch, FetchFailure, PolicyId, TxtLookup,
};
use mtasts_core::{Discovery, Policy, UnixTime};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Bumped when the layout changes; older entries are dropped (re-fetched), never misread.
const VERSION: u8 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    v: u8,
    policy: Option<PolicyEntry>,
    txt: Option<TxtEntry>,
    failed: Option<FailedEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PolicyEntry {
    text: String,
    id: PolicyId,
    fetched_at: UnixTime,
}

#[derive(Debug, Serialize, Deserialize)]
struct TxtEntry {
    at: UnixTime,
    #[serde(flatten)]
    kind: TxtKind,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum TxtKind {
    Found { id: PolicyId },
    NxDomain,
    NoData,
    NoRecord,
    Multiple { count: usize },
    TempFail { reason: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct FailedEntry {
    id: PolicyId,
    at: UnixTime,
    failure: String,
}

/// Encodes a state for storage.
pub fn encode(state: &DomainState) -> Result<String, StoreError> {
    let txt = state.txt.as_ref().and_then(|(at, lookup)| {
        let kind = match lookup {
            TxtLookup::Found(id) => TxtKind::Found { id: id.clone() },
            TxtLookup::Absent(Absence::NxDomain) => TxtKind::NxDomain,
            TxtLookup::Absent(Absence::NoData) => TxtKind::NoData,
            TxtLookup::Absent(Absence::Discovery(Discovery::NoRecord)) => TxtKind::NoRecord,
            TxtLookup::Absent(Absence::Discovery(Discovery::Multiple(n))) => {
                TxtKind::Multiple { count: *n }
            }
            // The parse error's detail is not kept; after a restart the record is looked up again.
            TxtLookup::Absent(Absence::Discovery(Discovery::Invalid(_))) => return None,
            TxtLookup::TempFail(reason) => TxtKind::TempFail {
                reason: reason.to_string(),
            },
        };
        Some(TxtEntry { at: *at, kind })
    });
    let entry = Entry {
        v: VERSION,
        policy: state.policy.as_ref().map(|p| PolicyEntry {
            text: p.policy.render(),
            id: p.id.clone(),
            fetched_at: p.fetched_at,
        }),
        txt,
        failed: state.failed_fetch.as_ref().map(|f| FailedEntry {
            id: f.id.clone(),
            at: f.at,
            failure: f.failure.result_type().to_string(),
        }),
    };
    serde_json::to_string(&entry).map_err(StoreError::Encode)
}

/// Decodes a stored state. A corrupt or foreign entry is an error naming the problem.
pub fn decode(text: &str) -> Result<DomainState, StoreError> {
    let entry: Entry = serde_json::from_str(text).map_err(StoreError::Decode)?;
    if entry.v != VERSION {
        return Err(StoreError::Version {
            found: entry.v,
            expected: VERSION,
        });
    }
    let policy = match entry.policy {
        Some(p) => {
            let parsed = Policy::parse(&p.text).map_err(StoreError::StoredPolicy)?;
            Some(CachedPolicy {
                policy: parsed.policy,
                id: p.id,
                fetched_at: p.fetched_at,
            })
        }
        None => None,
    };
    let txt = entry.txt.map(|t| {
        let lookup = match t.kind {
            // The same id as the policy's: shared, as when it was fetched.
            TxtKind::Found { id } => TxtLookup::Found(match &policy {
                Some(p) if p.id == id => p.id.clone(),
                _ => id,
            }),
            TxtKind::NxDomain => TxtLookup::Absent(Absence::NxDomain),
            TxtKind::NoData => TxtLookup::Absent(Absence::NoData),
            TxtKind::NoRecord => TxtLookup::Absent(Absence::Discovery(Discovery::NoRecord)),
            TxtKind::Multiple { count } => {
                TxtLookup::Absent(Absence::Discovery(Discovery::Multiple(count)))
            }
            TxtKind::TempFail { reason } => TxtLookup::TempFail(reason.into()),
        };
        (t.at, lookup)
    });
    let failed_fetch = match entry.failed {
        Some(f) => Some(Box::new(FailedFetch {
            id: f.id,
            at: f.at,
            failure: failure_from_str(&f.failure)?,
        })),
        None => None,
    };
    Ok(DomainState {
        policy,
        txt,
        failed_fetch,
    })
}

fn failure_from_str(s: &str) -> Result<FetchFailure, StoreError> {
    [
        FetchFailure::FetchError,
        FetchFailure::WebPkiInvalid,
        FetchFailure::PolicyInvalid,
    ]
    .into_iter()
    .find(|f| f.result_type() == s)
    .ok_or_else(|| StoreError::UnknownFailure(s.to_string()))
}
