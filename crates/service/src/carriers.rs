//! The carrier prober: probes the carrier of every stored trunk with SIP OPTIONS, once per
//! period per distinct address, and keeps what it finds (after hysteresis) in the store, so
//! that every replica answers the same (docs/diagnostics.md).
//!
//! Every replica runs one. Once a period it syncs the addresses with the trunks (new ones
//! are due at once, unused ones go). Each tick, it claims the addresses that are due (the
//! store moves a claimed address's next probe forward, so two replicas never probe one
//! address in one period), probes them at most [`ProbeSchedule::in_flight`] at a time, and
//! records each result with the next probe time, jittered so that addresses added together
//! spread out. A prober that dies after claiming leaves its addresses due again once the
//! claim's hold runs out: the state that must survive it is in the store.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use domain::{
    CarrierHealth, CarrierHealthStore, CarrierProbe, ProbeOutcome, ProbeResponse, RepositoryError,
    Timestamp,
};
use rand::Rng;

use crate::blocking;
use crate::observe::Observe;

/// When and how much the prober probes.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSchedule {
    /// Between two probes of one address (`CARRIER_PROBE_EVERY_SECS`, 60 s).
    pub every: Duration,
    /// Up to this much is added to each next probe time, at random (a tenth of `every`).
    pub jitter: Duration,
    /// Between two looks for due addresses.
    pub tick: Duration,
    /// Probes in flight at most, per process (`CARRIER_PROBES_IN_FLIGHT`, 50).
    pub in_flight: usize,
    /// How long a claimed address is held for its prober: longer than a probe (5 s plus
    /// DNS); a prober that died gives it back then.
    pub hold: Duration,
}

impl Default for ProbeSchedule {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(60),
            jitter: Duration::from_secs(6),
            tick: Duration::from_secs(5),
            in_flight: 50,
            hold: Duration::from_secs(30),
        }
    }
}

/// The metric label of a probe outcome: from a fixed set, whatever the carrier sent.
pub fn outcome_label(response: &ProbeResponse) -> &'static str {
    match response {
        ProbeResponse::Answered { .. } => "answered",
        ProbeResponse::Timeout => "timeout",
        ProbeResponse::IcmpUnreachable => "icmp_unreachable",
        ProbeResponse::DnsFailure => "dns_failure",
    }
}

/// The prober of one process.
pub struct CarrierProber {
    store: Arc<dyn CarrierHealthStore>,
    probe: Arc<dyn CarrierProbe>,
    observe: Arc<dyn Observe>,
    schedule: ProbeSchedule,
    /// When this prober last synced the addresses with the trunks.
    synced_at: Mutex<Option<Instant>>,
}

impl CarrierProber {
    /// A prober keeping health in `store`, probing with `probe`.
    pub fn new(
        store: Arc<dyn CarrierHealthStore>,
        probe: Arc<dyn CarrierProbe>,
        observe: Arc<dyn Observe>,
        schedule: ProbeSchedule,
    ) -> Self {
        Self {
            store,
            probe,
            observe,
            schedule,
            synced_at: Mutex::new(None),
        }
    }

    /// Probes forever: a pass every tick, however the last one went (a failed pass is
    /// logged; its claims come due again after their hold).
    pub async fn run(self: Arc<Self>) {
        loop {
            match self.pass().await {
                Ok(probed) if probed > 0 => log::debug!("carrier prober: {probed} probed"),
                Ok(_) => {}
                Err(error) => log::warn!("carrier prober: pass failed ({error})"),
            }
            tokio::time::sleep(self.schedule.tick).await;
        }
    }

    /// Claims the due addresses (at most `in_flight`), probes them all at once and records
    /// each; gives how many were probed.
    pub async fn pass(self: &Arc<Self>) -> Result<usize, RepositoryError> {
        let now = Timestamp::now();
        if self.sync_due() {
            let store = self.store.clone();
            blocking(self.observe.as_ref(), move || {
                store.sync_carrier_addresses(now)
            })
            .await?;
            *self
                .synced_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        }
        let hold_until = now.plus(self.schedule.hold);
        let limit = self.schedule.in_flight;
        let store = self.store.clone();
        let claimed = blocking(self.observe.as_ref(), move || {
            store.claim_due_carriers(now, hold_until, limit)
        })
        .await?;
        let count = claimed.len();
        let mut probes = tokio::task::JoinSet::new();
        for (address, health) in claimed {
            let prober = self.clone();
            probes.spawn(async move { prober.probe_and_record(address, health).await });
        }
        while let Some(done) = probes.join_next().await {
            if let Ok(Err(error)) = done {
                log::warn!("carrier prober: recording a probe failed ({error})");
            }
        }
        if count > 0 {
            let store = self.store.clone();
            let counts = blocking(self.observe.as_ref(), move || {
                store.trunks_by_carrier_state()
            })
            .await?;
            self.observe.carrier_trunks(counts);
        }
        Ok(count)
    }

    /// True when the carrier addresses were not synced with the trunks for a period (or
    /// ever): the sync reads every trunk, so it runs once a period, not every tick; a new
    /// carrier is probed within a period and a tick.
    fn sync_due(&self) -> bool {
        self.synced_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|at| at.elapsed() >= self.schedule.every)
    }

    /// Probes `address` now and records the result; gives the new health.
    pub async fn probe_now(&self, address: &str) -> Result<CarrierHealth, RepositoryError> {
        let store = self.store.clone();
        let owned = address.to_owned();
        let health = blocking(self.observe.as_ref(), move || store.carrier_health(&owned))
            .await?
            .unwrap_or_default();
        self.probe_and_record(address.to_owned(), health).await
    }

    async fn probe_and_record(
        &self,
        address: String,
        health: CarrierHealth,
    ) -> Result<CarrierHealth, RepositoryError> {
        let outcome = match self.probe.probe(&address).await {
            Ok(outcome) => outcome,
            // Not the carrier's fault (no local socket): nothing is recorded, and the
            // address comes due again after its hold.
            Err(error) => {
                log::warn!("carrier prober: cannot probe ({error})");
                return Ok(health);
            }
        };
        self.observe
            .carrier_probed(outcome_label(&outcome.response));
        let next = health.after(outcome);
        let next_probe_at = self.next_probe_at(&next);
        let store = self.store.clone();
        let recorded = next.clone();
        blocking(self.observe.as_ref(), move || {
            store.record_carrier_health(&address, &recorded, next_probe_at)
        })
        .await?;
        Ok(next)
    }

    fn next_probe_at(&self, health: &CarrierHealth) -> Timestamp {
        let jitter_ms = u64::try_from(self.schedule.jitter.as_millis()).unwrap_or(u64::MAX);
        let jitter = Duration::from_millis(rand::rng().random_range(0..=jitter_ms));
        let from = health
            .last_probe
            .as_ref()
            .map_or_else(Timestamp::now, |probe: &ProbeOutcome| probe.at);
        from.plus(self.schedule.every + jitter)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use domain::{
        CarrierState, NewSipTrunk, NewSipTrunkInput, ProvisionFuture, SipTrunkRepository, UserId,
    };
    use store::MemoryStore;

    use super::*;

    /// Answers each address with the responses queued for it, in turn; counts the probes.
    #[derive(Default)]
    struct ScriptedProbe {
        answers: Mutex<HashMap<String, Vec<ProbeResponse>>>,
        probed: Mutex<Vec<String>>,
    }

    impl CarrierProbe for ScriptedProbe {
        fn probe<'a>(&'a self, host: &'a str) -> ProvisionFuture<'a, ProbeOutcome> {
            Box::pin(async move {
                self.probed.lock().unwrap().push(host.to_owned());
                let mut answers = self.answers.lock().unwrap();
                let queue = answers.get_mut(host).filter(|q| !q.is_empty());
                let response = queue.map_or(ProbeResponse::Timeout, |q| q.remove(0));
                Ok(ProbeOutcome {
                    response,
                    at: Timestamp::now(),
                    rtt: None,
                })
            })
        }
    }

    #[derive(Default)]
    struct Outcomes(
        Mutex<Vec<&'static str>>,
        Mutex<Option<domain::TrunksByCarrierState>>,
    );

    impl Observe for Outcomes {
        fn carrier_probed(&self, outcome: &'static str) {
            self.0.lock().unwrap().push(outcome);
        }

        fn carrier_trunks(&self, counts: domain::TrunksByCarrierState) {
            *self.1.lock().unwrap() = Some(counts);
        }
    }

    fn trunk(phone: &str, address: &str) -> NewSipTrunk {
        NewSipTrunk::parse(&NewSipTrunkInput {
            sip_trunk_type: Some("number".into()),
            phone_number: Some(phone.into()),
            sip_username: Some("acme_user".into()),
            sip_password: Some("Secret-Pass-1".into()),
            sip_address: Some(address.into()),
            sip_calling_format: Some("+e164".into()),
            inbound_authorization_type: Some("auth".into()),
            ..NewSipTrunkInput::default()
        })
        .unwrap()
    }

    fn store_with(addresses: &[&str]) -> Arc<MemoryStore> {
        let store = Arc::new(MemoryStore::new());
        let owner: UserId = domain::AccountRepository::create_user(
            store.as_ref(),
            &domain::Email::parse("a@example.com").unwrap(),
            &domain::UserName::parse("A").unwrap(),
        )
        .unwrap()
        .id;
        for (n, address) in addresses.iter().enumerate() {
            store
                .create_trunk(owner, &trunk(&format!("+1415555{n:04}"), address), 100)
                .unwrap();
        }
        store
    }

    #[tokio::test]
    async fn a_pass_probes_each_due_carrier_once_and_keeps_its_health_until_the_next_period() {
        let store = store_with(&["sip.a.example", "sip.b.example", "sip.a.example"]);
        let probe = Arc::new(ScriptedProbe::default());
        probe.answers.lock().unwrap().insert(
            "sip.a.example".into(),
            vec![ProbeResponse::answered(404, "Not Found")],
        );
        let outcomes = Arc::new(Outcomes::default());
        let prober = Arc::new(CarrierProber::new(
            store.clone(),
            probe.clone(),
            outcomes.clone(),
            ProbeSchedule::default(),
        ));
        assert_eq!(prober.pass().await.unwrap(), 2);
        let mut probed = probe.probed.lock().unwrap().clone();
        probed.sort();
        assert_eq!(probed, ["sip.a.example", "sip.b.example"]);
        let a = store.carrier_health("sip.a.example").unwrap().unwrap();
        assert_eq!(a.state, CarrierState::Reachable);
        let b = store.carrier_health("sip.b.example").unwrap().unwrap();
        assert_eq!((b.state, b.failures_in_row), (CarrierState::Unknown, 1));
        let mut seen = outcomes.0.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, ["answered", "timeout"]);
        // Two trunks on the answering carrier, one on the other, not decided yet.
        assert_eq!(
            *outcomes.1.lock().unwrap(),
            Some(domain::TrunksByCarrierState {
                reachable: 2,
                unreachable: 0,
                unknown: 1
            })
        );
        // Nothing is due again within the period (60 s, plus up to 6 s of jitter).
        assert_eq!(prober.pass().await.unwrap(), 0);
        let in_a_minute = Timestamp::now().plus(Duration::from_secs(59));
        let hold = in_a_minute.plus(Duration::from_secs(30));
        assert!(store
            .claim_due_carriers(in_a_minute, hold, 10)
            .unwrap()
            .is_empty());
        let later = Timestamp::now().plus(Duration::from_secs(67));
        assert_eq!(store.claim_due_carriers(later, later, 10).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_probe_now_records_its_outcome_after_the_stored_health() {
        let store = store_with(&["sip.a.example"]);
        let probe = Arc::new(ScriptedProbe::default());
        let prober = Arc::new(CarrierProber::new(
            store.clone(),
            probe,
            Arc::new(Outcomes::default()),
            ProbeSchedule::default(),
        ));
        for _ in 0..3 {
            prober.probe_now("sip.a.example").await.unwrap();
        }
        let health = store.carrier_health("sip.a.example").unwrap().unwrap();
        assert_eq!(
            (health.state, health.failures_in_row),
            (CarrierState::Unreachable, 3)
        );
    }
}
