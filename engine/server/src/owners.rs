//! Who may see a job: it belongs to the key that signed it. `Get`, `Watch`, `Cancel`, receipts
//! and the HTTP door's `GET /jobs/ID` answer its owner, proved by a client certificate (mutual
//! TLS) or by a request proof (`chimera_maml::RequestProof`, in the call's metadata or headers);
//! the client certificate that submitted it (a gateway relaying its users' jobs); or a key trusted
//! with `admin`. Anyone else hears `NO_SUCH_JOB`, as for an id no job has: nothing about other
//! clients' jobs, not even that they exist.

use chimera_journal::JobRecord;
use chimera_maml::{PROOF_HEADERS, ProofError, RequestProof, TrustStore};
use jiff::Timestamp;
use tonic::Status;

use chimera_client::JobCall;

use crate::client_certificates::Client;
use crate::refusal::Reason;

/// Who asks: the client a certificate named, and the proof the request carried.
#[derive(Debug, Clone, Default)]
pub struct Asker {
    pub client: Option<String>,
    pub proof: Option<RequestProof>,
}

impl Asker {
    /// The asker of a gRPC call.
    pub fn of_call<T>(request: &tonic::Request<T>) -> Result<Self, Status> {
        let metadata = request.metadata();
        let client = request.extensions().get::<Client>().map(|c| c.0.clone());
        Self::with_proof(client, |name| metadata.get(name)?.to_str().ok())
    }

    /// The asker of an HTTP request.
    pub fn of_http(headers: &http::HeaderMap, client: Option<String>) -> Result<Self, Status> {
        Self::with_proof(client, |name| headers.get(name)?.to_str().ok())
    }

    /// `client`, and the proof in the headers that `header` reads, if they carry one.
    fn with_proof<'a>(
        client: Option<String>,
        header: impl FnMut(&'static str) -> Option<&'a str>,
    ) -> Result<Self, Status> {
        let values = PROOF_HEADERS.map(header);
        Ok(Self {
            client,
            proof: RequestProof::from_header_values(values).map_err(|e| bad_proof(&e))?,
        })
    }

    /// Whether the asker may see `record`, asking `call` at `now`: refused when it proved
    /// nothing, or proved wrongly.
    pub fn may_see(
        &self,
        record: Option<&JobRecord>,
        trust: &TrustStore,
        call: JobCall,
        id: &str,
        now: Timestamp,
    ) -> Result<bool, Status> {
        let mut names = Vec::new();
        if let Some(client) = &self.client {
            names.push(client.as_str());
        }
        if let Some(proof) = &self.proof {
            let key = proof
                .check(trust, call.name(), id, now)
                .map_err(|e| bad_proof(&e))?;
            names.push(key.name.as_str());
        }
        if names.is_empty() {
            return Err(proof_required(call));
        }
        let admin = names.iter().any(|name| {
            trust
                .keys()
                .iter()
                .any(|k| k.name == *name && k.revoked_at.is_none() && k.is_admin())
        });
        Ok(record.is_some_and(|r| {
            admin
                || names.contains(&r.submitted_by.as_str())
                || r.relayed_by.as_deref().is_some_and(|c| names.contains(&c))
        }))
    }
}

/// The answer to a job the asker may not see, and to an id no job has: the same.
pub fn no_such_job(id: &str) -> Status {
    Reason::NoSuchJob.status(format!(
        "no job `{id}` that this client may see: a job answers only the key that signed it, \
             the client certificate that submitted it, or an admin key"
    ))
}

fn proof_required(call: JobCall) -> Status {
    Reason::ProofRequired.status(format!(
        "{} of a job answers only its owner: prove the key that signed it (`chimera watch`, \
             `receipt` and `cancel` do with --key; the {} metadata), or call with a client \
             certificate",
        call.name(),
        PROOF_HEADERS.join(", ")
    ))
}

fn bad_proof(e: &ProofError) -> Status {
    Reason::BadProof.status(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chimera_client::prove;
    use chimera_maml::SecretKey;

    fn record(owner: &str, relay: Option<&str>) -> JobRecord {
        let json = serde_json::json!({
            "id": "j", "seq": 1, "job_type": "quantum_circuit", "role": "quantum",
            "submitted_by": owner, "relayed_by": relay, "digest": "d", "state": "queued",
            "head": null, "attempts": 0, "submitted_at": "2026-12-07T10:00:00Z",
            "started_at": null, "finished_at": null, "result": null, "error": null,
            "receipt": null,
        });
        serde_json::from_value(json).unwrap()
    }

    fn trust(keys: &[(&str, &SecretKey, &str)]) -> TrustStore {
        let mut store = TrustStore::new();
        for (name, key, allow) in keys {
            let allow = vec![(*allow).to_owned()];
            store
                .add(name, key.public_key(), allow, Timestamp::now())
                .unwrap();
        }
        store
    }

    fn proved(key: &SecretKey, call: JobCall) -> Asker {
        Asker {
            client: None,
            proof: Some(RequestProof::sign(key, call.name(), "j", Timestamp::now())),
        }
    }

    #[test]
    fn the_owner_its_relay_and_an_admin_see_a_job_and_no_one_else() {
        let (alice, carol, ops) = (
            SecretKey::from_seed(&[1; 32]),
            SecretKey::from_seed(&[2; 32]),
            SecretKey::from_seed(&[3; 32]),
        );
        let trust = trust(&[
            ("alice", &alice, "*"),
            ("carol", &carol, "*"),
            ("ops", &ops, "admin"),
        ]);
        let job = record("alice", Some("gateway"));
        let sees = |asker: &Asker| {
            asker
                .may_see(Some(&job), &trust, JobCall::Get, "j", Timestamp::now())
                .unwrap()
        };
        assert!(sees(&proved(&alice, JobCall::Get)));
        assert!(!sees(&proved(&carol, JobCall::Get)));
        assert!(sees(&proved(&ops, JobCall::Get)));
        let relay = Asker {
            client: Some("gateway".into()),
            proof: None,
        };
        assert!(sees(&relay));
        let certified_carol = Asker {
            client: Some("carol".into()),
            proof: None,
        };
        assert!(!sees(&certified_carol));
        // A proof made for another call proves nothing.
        let wrong_call = proved(&alice, JobCall::Cancel)
            .may_see(Some(&job), &trust, JobCall::Get, "j", Timestamp::now())
            .unwrap_err();
        assert_eq!(chimera_client::reason_of(&wrong_call).unwrap(), "BAD_PROOF");
        let nobody = Asker::default()
            .may_see(Some(&job), &trust, JobCall::Get, "j", Timestamp::now())
            .unwrap_err();
        assert_eq!(
            chimera_client::reason_of(&nobody).unwrap(),
            "PROOF_REQUIRED"
        );
        // No job: the same answer as a job of someone else's.
        let absent = proved(&alice, JobCall::Get)
            .may_see(None, &trust, JobCall::Get, "j", Timestamp::now())
            .unwrap();
        assert!(!absent);
    }

    #[test]
    fn a_proof_travels_in_a_calls_metadata() {
        let alice = SecretKey::from_seed(&[1; 32]);
        let mut request = tonic::Request::new(());
        prove(&mut request, &alice, JobCall::Watch, "j");
        let asker = Asker::of_call(&request).unwrap();
        let trust = trust(&[("alice", &alice, "quantum_circuit")]);
        let job = record("alice", None);
        assert!(
            asker
                .may_see(Some(&job), &trust, JobCall::Watch, "j", Timestamp::now())
                .unwrap()
        );
    }
}
