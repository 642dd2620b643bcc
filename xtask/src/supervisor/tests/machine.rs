//! The start, the crashes and the stop of the stack.

use std::time::Duration;

use super::{Bench, daemon, task};
use crate::stack::{self, Unit};
use crate::supervisor::Supervisor;
use crate::supervisor::events::Event;
use crate::supervisor::run_state::{Phase, RunState, Status};
use crate::supervisor::slot::{AfterStop, SlotState, restart_delay};

static BASE: Unit = task("base", &[]);
static MIDDLE: Unit = task("middle", &["base"]);
static TOP: Unit = task("top", &["middle"]);
static ALONE: Unit = task("alone", &[]);

static DB: Unit = daemon("db", &[], stack::postgres::PORT);
static CACHE: Unit = daemon("cache", &[], stack::valkey::PORT);
static MIGRATE: Unit = task("migrate", &["db"]);
static WEB: Unit = daemon("web", &["migrate", "cache"], stack::nginx::PORT);
/// Needs nothing, and nothing needs it.
static DOCS: Unit = daemon("docs", &[], stack::pgbouncer::PORT);

#[test]
fn units_start_once_their_dependencies_are_ready() {
    let cfg = crate::config::tests::config_in(std::path::Path::new("/nonexistent"));
    let fake = std::sync::Arc::new(super::Fake::default());
    let misordered = Supervisor::of(&cfg, vec![&TOP, &MIDDLE, &BASE, &ALONE], fake);
    assert_eq!(
        misordered.err().unwrap().to_string(),
        "top depends on middle, which comes after it in the table; list middle first",
        "the table is checked before anything starts"
    );

    let mut bench = Bench::new(vec![&BASE, &MIDDLE, &TOP, &ALONE]);
    bench.start().unwrap();
    assert_eq!(
        bench.fake.asked(),
        ["run base", "run alone", "run middle", "run top"]
    );
    let mut bench = Bench::new(vec![&DB, &CACHE, &MIGRATE, &WEB]);
    bench.settle().unwrap();
    assert_eq!(
        bench.fake.asked(),
        ["start db", "start cache", "run migrate", "start web"]
    );
    assert!(bench.statuses().iter().all(|(_, s)| *s == Status::Ready));
    let state = RunState::read(&bench.dir).expect("the state is published");
    assert_eq!(state.phase, Phase::Running);
    assert_eq!(state.units[3].status, Status::Ready);
    assert_eq!(state.units[2].message.as_deref(), Some("migrate done"));

    // A moment later, the contract is checked beside the running stack, once.
    bench.wait(Duration::from_millis(999)).unwrap();
    assert_eq!(bench.fake.contract_checks(), 0);
    bench.wait(Duration::from_millis(1)).unwrap();
    assert_eq!(bench.fake.contract_checks(), 1);
    assert_eq!(bench.sup.contract.as_ref().unwrap().checks, 4);
    bench.wait(Duration::from_secs(3600)).unwrap();
    assert_eq!(bench.fake.contract_checks(), 1);
    assert!(bench.fake.asked().is_empty());
}

#[test]
fn a_daemon_is_ready_once_its_probe_answers_and_dependents_wait_for_it() {
    let mut bench = Bench::new(vec![&DB, &CACHE, &MIGRATE, &WEB]);
    bench.fake.silence("db");
    bench.wait(Duration::from_secs(5)).unwrap();
    assert_eq!(bench.fake.asked(), ["start db", "start cache"]);
    assert_eq!(bench.status("db"), Status::Starting);
    assert_eq!(bench.status("migrate"), Status::Waiting);
    bench.fake.answer("db");
    bench.wait(Duration::from_millis(20)).unwrap();
    assert_eq!(bench.fake.asked(), ["run migrate", "start web"]);
    assert_eq!(bench.sup.phase, Phase::Running);
    assert_eq!(bench.sup.slots[0].ready_ms, Some(5020));

    // Each step is recorded for `up --timings`, with what each unit waited for: web needs
    // cache (ready at once) and migrate, which waited for db.
    let timings = |name| bench.slot(name).timings.clone();
    let db = timings("db");
    assert_eq!(
        (db.began_ms, db.spawned_ms, db.ready_ms, db.waited_for),
        (Some(0), Some(0), Some(5020), None)
    );
    assert_eq!(timings("migrate").waited_for.as_deref(), Some("db"));
    let web = timings("web");
    assert_eq!(web.waited_for.as_deref(), Some("migrate"));
    assert_eq!((web.began_ms, web.ready_ms), (Some(5020), Some(5020)));
    assert_eq!(timings("cache").ready_ms, Some(0));
}

#[test]
fn up_service_starts_it_and_its_dependencies_only() {
    let mut bench = Bench::new(vec![&BASE, &MIDDLE, &TOP]);
    bench.sup.hold_all_but(&["middle".into()]).unwrap();
    bench.start().unwrap();
    assert_eq!(bench.fake.asked(), ["run base", "run middle"]);
    assert_eq!(bench.status("top"), Status::Stopped);
    assert_eq!(
        bench.sup.phase,
        Phase::Running,
        "a held unit is not waited for"
    );
    let state = RunState::read(&bench.dir).unwrap();
    assert_eq!(
        state.units[2].message.as_deref(),
        Some("not started (`cargo xtask up top` starts it)")
    );
    let unknown = bench.sup.hold_all_but(&["nope".into()]).unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "this stack has no service \"nope\"; it has base, middle, top"
    );
}

#[test]
fn a_failing_dependency_stops_the_start_before_its_dependents() {
    let mut bench = Bench::new(vec![&BASE, &MIDDLE]);
    bench.fake.fail("base", "base refuses");
    let err = bench.start().unwrap_err();
    assert_eq!(format!("{err:#}"), "base: base refuses");
    assert_eq!(bench.status("base"), Status::Failed);
    assert_eq!(bench.status("middle"), Status::Waiting);
    assert_eq!(bench.fake.asked(), ["run base"], "a dependent ran");

    let mut bench = Bench::new(vec![&DB, &MIGRATE]);
    bench.fake.fail("db", "cannot write db.conf");
    let err = bench.start().unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "db: cannot prepare: cannot write db.conf"
    );
    assert!(bench.fake.asked().is_empty(), "nothing started");
}

#[test]
fn a_daemon_that_exits_or_never_answers_while_the_stack_starts_fails_the_start() {
    let mut bench = Bench::new(vec![&DB, &CACHE]);
    bench.fake.silence("db");
    bench.settle().unwrap();
    bench.fake.exit("db", "exit status: 1");
    let err = bench.start().unwrap_err();
    assert_eq!(err.to_string(), "db exited (exit status: 1)");
    assert_eq!(bench.status("db"), Status::Failed);
    assert!(bench.slot("db").process().is_none());

    let mut bench = Bench::new(vec![&DB, &CACHE]);
    bench.fake.silence("db");
    bench.wait(Duration::from_millis(59_990)).unwrap();
    assert_eq!(bench.status("db"), Status::Starting);
    let err = bench.wait(Duration::from_millis(20)).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "db: not ready: not ready after 60s: connection refused"
    );
    // It is stopped at once; the stop of the stack waits for it.
    assert_eq!(
        bench.fake.asked(),
        ["start db", "start cache", "SIGTERM db"]
    );
    assert_eq!(bench.status("db"), Status::Failed);
}

#[test]
fn a_daemon_failing_while_the_stack_runs_is_restarted_with_a_growing_delay() {
    let delays: Vec<u64> = (0..8)
        .map(|n| restart_delay(n).as_millis() as u64)
        .collect();
    assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);

    let mut bench = Bench::new(vec![&DB, &MIGRATE]);
    bench.fake.silence("db");
    bench.settle().unwrap();
    bench.fake.answer("db");
    bench.start().unwrap();
    bench.fake.asked();
    // Each restart that never gets ready waits longer before the next.
    bench.fake.silence("db");
    for (restarts, delay) in [(1, 500), (2, 1000), (3, 2000)] {
        bench.fake.exit("db", "signal: 9 (SIGKILL)");
        let exited_at = bench.now;
        bench.settle().unwrap();
        let SlotState::Waiting {
            not_before: Some(at),
        } = *bench.state("db")
        else {
            panic!("not waiting to restart: {:?}", bench.state("db"))
        };
        assert_eq!(at - exited_at, Duration::from_millis(delay));
        assert_eq!(bench.status("db"), Status::Restarting);
        let slot = bench.slot("db");
        assert_eq!(slot.restarts, restarts);
        assert_eq!(
            slot.message.as_deref(),
            Some("db exited (signal: 9 (SIGKILL))"),
            "the reason is kept"
        );
        bench.wait(Duration::from_millis(delay - 1)).unwrap();
        assert!(bench.fake.asked().is_empty(), "restarted early");
        bench.wait(Duration::from_millis(1)).unwrap();
        assert_eq!(bench.fake.asked(), ["start db"]);
    }
    // Once ready again, the next failure waits the first delay again; the dependent task is
    // not run again.
    bench.fake.answer("db");
    bench.wait(Duration::from_millis(20)).unwrap();
    assert_eq!(bench.status("db"), Status::Ready);
    bench.fake.exit("db", "exit status: 1");
    bench.settle().unwrap();
    assert_eq!(
        bench.sup.next_deadline(bench.now),
        Some(bench.now + Duration::from_millis(500))
    );
    bench.wait(Duration::from_millis(500)).unwrap();
    assert_eq!(bench.fake.asked(), ["start db"]);
    assert_eq!(bench.status("migrate"), Status::Ready);
}

#[test]
fn a_daemon_that_answers_no_more_within_the_deadline_is_stopped_and_restarted() {
    let mut bench = Bench::new(vec![&DB]);
    bench.start().unwrap();
    bench.fake.asked();
    bench.fake.silence("db");
    bench.fake.exit("db", "exit status: 1");
    bench.wait(Duration::from_millis(500)).unwrap();
    assert_eq!(bench.fake.asked(), ["start db"]);
    bench.wait(Duration::from_secs(60)).unwrap();
    // Stopped, then waiting its (second) delay.
    assert_eq!(bench.fake.asked(), ["SIGTERM db"]);
    assert_eq!(bench.status("db"), Status::Restarting);
    assert!(
        bench.sup.slots[0]
            .message
            .as_deref()
            .unwrap()
            .starts_with("db: not ready: not ready after 60s")
    );
}

#[test]
fn a_stopped_daemon_is_never_restarted_however_much_time_passes() {
    let mut bench = Bench::new(vec![&DB, &CACHE]);
    bench.start().unwrap();
    bench.fake.asked();
    bench.fake.stubborn("cache");
    let slot = bench.sup.indices(&["cache".into()]).unwrap()[0];
    assert!(bench.sup.slots[slot].stop(AfterStop::Hold, &*bench.fake, bench.now));
    // Its exit while it stops (here: SIGKILL after the grace period) is no crash.
    bench.wait(Duration::from_secs(10)).unwrap();
    assert_eq!(bench.fake.asked(), ["SIGTERM cache", "SIGKILL cache"]);
    assert_eq!(bench.status("cache"), Status::Stopped);
    bench.wait(Duration::from_secs(24 * 3600)).unwrap();
    assert!(bench.fake.asked().is_empty(), "something was started");
    assert_eq!(bench.status("cache"), Status::Stopped);
    assert_eq!(bench.sup.slots[slot].restarts, 0);
    assert_eq!(bench.status("db"), Status::Ready);
}

#[test]
fn the_stack_stops_dependents_first_and_the_independent_at_once() {
    let mut bench = Bench::new(vec![&DB, &CACHE, &MIGRATE, &WEB]);
    bench.start().unwrap();
    bench.fake.asked();
    bench.sup.stop_all();
    assert_eq!(
        bench.fake.asked(),
        [
            "end the one-shots",
            "SIGTERM web",
            "SIGTERM db",
            "SIGTERM cache"
        ]
    );
    assert!(bench.statuses().iter().all(|(_, s)| *s == Status::Stopped));
    let state = RunState::read(&bench.dir).unwrap();
    assert_eq!(state.phase, Phase::Stopped);
    assert!(state.units.iter().all(|u| u.pid.is_none()));

    // A dependency waits for its dependents: web ignores SIGTERM until SIGKILL, and db and
    // cache wait for it; docs, which nothing needs, stops at once beside it.
    let mut bench = Bench::new(vec![&DB, &CACHE, &MIGRATE, &WEB, &DOCS]);
    bench.start().unwrap();
    bench.fake.asked();
    bench.fake.stubborn("web");
    bench.sup.begin_stop();
    bench.wait(Duration::from_millis(9_999)).unwrap();
    assert_eq!(bench.fake.asked(), ["SIGTERM web", "SIGTERM docs"]);
    assert_eq!(bench.status("docs"), Status::Stopped);
    let mut answer = bench.call(crate::supervisor::socket::Request::Stop {
        services: vec!["db".into()],
    });
    assert_eq!(
        answer.done(),
        Some(Err("the stack is stopping (`cargo xtask down`)".into()))
    );
    bench.wait(Duration::from_millis(1)).unwrap();
    assert_eq!(
        bench.fake.asked(),
        ["SIGKILL web", "SIGTERM db", "SIGTERM cache"]
    );
    assert!(bench.sup.stopping.is_none());
}

#[test]
fn a_stop_signal_ends_the_loop_and_one_during_the_start_says_so() {
    let mut bench = Bench::new(vec![&DB, &CACHE]);
    bench.start().unwrap();
    bench.sup.sender.send(Event::Signal).unwrap();
    bench.sup.supervise().unwrap();
    assert_eq!(bench.sup.error, None);

    let mut bench = Bench::new(vec![&DB, &CACHE]);
    bench.fake.silence("db");
    bench.sup.sender.send(Event::Signal).unwrap();
    bench.sup.supervise().unwrap();
    assert_eq!(
        bench.sup.error.as_deref(),
        Some("stopped while it was starting, by `cargo xtask down` (or a signal)")
    );
    bench.sup.stop_all();
    assert!(!bench.fake.runs("db") && !bench.fake.runs("cache"));
}

#[test]
fn a_daemon_stopped_before_it_is_ready_is_killed_after_a_short_grace() {
    let mut bench = Bench::new(vec![&DB, &CACHE]);
    bench.fake.silence("db");
    bench.fake.stubborn("db");
    bench.wait(Duration::from_millis(100)).unwrap();
    assert_eq!(bench.status("db"), Status::Starting);
    bench.fake.asked();
    bench.sup.begin_stop();
    // Nothing depends on either: each stopped at once; cache is ready and
    // stubborn db is not, so db alone is killed, a second later, not ten.
    bench.wait(Duration::from_millis(999)).unwrap();
    assert_eq!(bench.fake.asked(), ["SIGTERM db", "SIGTERM cache"]);
    bench.wait(Duration::from_millis(1)).unwrap();
    assert_eq!(bench.fake.asked(), ["SIGKILL db"]);
}
