//! Reads handed to the store (`queue_list`, `queue_get`) and, on the SQL stores, reads asked
//! for together (`read_trunks_together`, PostgreSQL's one statement for a batch): each must
//! answer exactly what a read of its own answers, whatever else shares its batch.

use diesel::prelude::*;
use domain::{
    PasswordWithheld, RepositoryError, RepositoryResult, SipTrunk, TrunkId, TrunkListing,
    TrunkPage, UserId,
};
use store::sql::schema::sip_trunks;
use store::{TrunkRead, TrunkReadOutcome};

use super::cases::{number_trunk, numbered_trunks, user, NO_LIMIT};
use super::fixtures::Fixture;
use super::ledger::lease;

/// Two owners' trunks, a create still hidden, and the reads of them a batch may hold.
struct Scene {
    owner: UserId,
    other: UserId,
    /// The owner's five visible trunks, by id.
    ids: Vec<TrunkId>,
    /// The other owner's trunk.
    others: TrunkId,
    /// The owner's create still in progress (never seen by a read).
    hidden: TrunkId,
}

fn scene(fixture: &Fixture) -> Scene {
    let owner = user(fixture, "a@example.com");
    let other = user(fixture, "b@example.com");
    let ids = numbered_trunks(fixture, owner, "+1415555400", 5);
    let others = fixture
        .trunks
        .create_trunk(other, &number_trunk("+14155554009"), NO_LIMIT)
        .unwrap()
        .id;
    let hidden = fixture
        .ledger
        .begin_create(
            owner,
            &number_trunk("+14155554008"),
            NO_LIMIT,
            &lease("creator", 30),
        )
        .unwrap()
        .id;
    Scene {
        owner,
        other,
        ids,
        others,
        hidden,
    }
}

/// Every kind of read the scene allows: pages from the start, after a row, past the end,
/// of the other owner; trunks that are there, another owner's, hidden, absent.
fn reads_of(scene: &Scene) -> Vec<TrunkRead> {
    let absent = TrunkId::new(scene.hidden.get() + 1000).unwrap();
    vec![
        TrunkRead::Page(scene.owner, TrunkPage::first(2)),
        TrunkRead::One(scene.owner, scene.ids[3]),
        TrunkRead::Page(
            scene.owner,
            TrunkPage {
                after: Some(scene.ids[1]),
                limit: 2,
            },
        ),
        TrunkRead::One(scene.other, scene.ids[0]),
        TrunkRead::Page(scene.other, TrunkPage::first(100)),
        TrunkRead::One(scene.owner, scene.hidden),
        TrunkRead::Page(scene.owner, TrunkPage::first(100)),
        TrunkRead::One(scene.owner, absent),
        TrunkRead::Page(
            scene.owner,
            TrunkPage {
                after: Some(scene.ids[4]),
                limit: 100,
            },
        ),
        TrunkRead::One(scene.other, scene.others),
        TrunkRead::One(scene.owner, scene.ids[0]),
        TrunkRead::Page(scene.owner, TrunkPage::first(0)),
    ]
}

/// What a read of its own answers.
fn alone(fixture: &Fixture, read: TrunkRead) -> RepositoryResult<TrunkReadOutcome> {
    match read {
        TrunkRead::Page(owner, page) => fixture
            .trunks
            .list_trunks(owner, page)
            .map(TrunkReadOutcome::Page),
        TrunkRead::One(owner, id) => fixture
            .trunks
            .get_trunk(owner, id)
            .map(TrunkReadOutcome::One),
    }
}

fn ids_of(outcome: &RepositoryResult<TrunkReadOutcome>) -> Result<Vec<TrunkId>, RepositoryError> {
    match outcome {
        Ok(TrunkReadOutcome::Page(listing)) => Ok(listing.trunks.iter().map(|t| t.id).collect()),
        Ok(TrunkReadOutcome::One(trunk)) => Ok(vec![trunk.id]),
        Err(error) => Err(error.clone()),
    }
}

/// The reads of [`reads_of`] answer what the scene holds (so that comparing a batch with
/// reads of their own compares against the right answers).
fn reads_alone_answer_the_scene(fixture: &Fixture, scene: &Scene) {
    let answers: Vec<_> = reads_of(scene)
        .into_iter()
        .map(|read| ids_of(&alone(fixture, read)))
        .collect();
    let ids = &scene.ids;
    let expected: Vec<Result<Vec<TrunkId>, RepositoryError>> = vec![
        Ok(vec![ids[0], ids[1]]),
        Ok(vec![ids[3]]),
        Ok(vec![ids[2], ids[3]]),
        Err(RepositoryError::NotFound),
        Ok(vec![scene.others]),
        Err(RepositoryError::NotFound),
        Ok(ids.clone()),
        Err(RepositoryError::NotFound),
        Ok(vec![]),
        Ok(vec![scene.others]),
        Ok(vec![ids[0]]),
        Ok(vec![]),
    ];
    assert_eq!(answers, expected);
}

pub fn reads_queued_at_once_each_get_their_own_answer(fixture: &Fixture) {
    let scene = scene(fixture);
    reads_alone_answer_the_scene(fixture, &scene);
    let reads = reads_of(&scene);
    let (sender, answers) = std::sync::mpsc::channel();
    // Queued from one thread without waiting, several rounds: a store that reads in batches
    // gets them while it runs the first, so reads of both owners share batches.
    for _ in 0..8 {
        for (n, read) in reads.iter().enumerate() {
            let sender = sender.clone();
            match *read {
                TrunkRead::Page(owner, page) => fixture.trunks.queue_list(
                    owner,
                    page,
                    Box::new(move |outcome: RepositoryResult<TrunkListing>| {
                        sender
                            .send((n, outcome.map(TrunkReadOutcome::Page)))
                            .unwrap();
                    }),
                ),
                TrunkRead::One(owner, id) => fixture.trunks.queue_get(
                    owner,
                    id,
                    Box::new(
                        move |outcome: RepositoryResult<SipTrunk<PasswordWithheld>>| {
                            sender
                                .send((n, outcome.map(TrunkReadOutcome::One)))
                                .unwrap();
                        },
                    ),
                ),
            }
        }
    }
    drop(sender);
    let answers: Vec<_> = answers.iter().collect();
    assert_eq!(
        answers.len(),
        8 * reads.len(),
        "every queued read is answered once"
    );
    for (n, answer) in answers {
        assert_eq!(answer, alone(fixture, reads[n]), "read {n}: {:?}", reads[n]);
    }
}

pub fn a_batch_of_reads_answers_each_as_its_own_read_would(fixture: &Fixture) {
    let scene = scene(fixture);
    reads_alone_answer_the_scene(fixture, &scene);
    let sql = fixture.sql.as_ref().unwrap();
    // One of the owner's rows no longer reads: the pages that hold it report it apart.
    sql.with_connection(|conn| {
        diesel::update(sip_trunks::table.filter(sip_trunks::id.eq(scene.ids[2].get())))
            .set(sip_trunks::country_code.eq("??"))
            .execute(conn)
    })
    .unwrap();
    let reads = reads_of(&scene);
    let together = sql.read_trunks_together(&reads);
    assert_eq!(together.len(), reads.len());
    for (n, (read, answer)) in reads.iter().zip(&together).enumerate() {
        assert_eq!(*answer, alone(fixture, *read), "read {n}: {read:?}");
    }
    let Ok(TrunkReadOutcome::Page(all)) = &together[6] else {
        panic!("the owner's whole list: {:?}", together[6]);
    };
    assert_eq!(all.rows, 5);
    assert_eq!(all.unreadable.len(), 1);
    assert_eq!(all.unreadable[0].id, scene.ids[2]);
    assert!(matches!(together[1], Ok(TrunkReadOutcome::One(_))));
    let Ok(TrunkReadOutcome::Page(after_second)) = &together[2] else {
        panic!("the page after the second row: {:?}", together[2]);
    };
    let shown: Vec<TrunkId> = after_second.trunks.iter().map(|trunk| trunk.id).collect();
    assert_eq!(shown, [scene.ids[3]]);
    assert_eq!(after_second.unreadable[0].id, scene.ids[2]);
    assert_eq!(
        (after_second.rows, after_second.last_id),
        (2, Some(scene.ids[3]))
    );
    // The same read many times in one batch, and an empty batch.
    let repeated = vec![TrunkRead::Page(scene.owner, TrunkPage::first(3)); 70];
    let answers = sql.read_trunks_together(&repeated);
    assert_eq!(answers.len(), 70);
    assert!(answers.iter().all(|answer| *answer == answers[0]));
    assert_eq!(ids_of(&answers[0]), Ok(vec![scene.ids[0], scene.ids[1]]));
    assert!(sql.read_trunks_together(&[]).is_empty());
}
