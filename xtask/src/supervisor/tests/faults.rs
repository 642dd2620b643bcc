//! Issue 17's faults on the supervisor's side, on the fake: a daemon that stops answering
//! (liveness), a port taken before a restart, and commands that race.

use std::time::Duration;

use super::{Bench, daemon, holding_data, names, task};
use crate::stack::{self, LIVENESS_PERIOD, Unit};
use crate::supervisor::events::Event;
use crate::supervisor::run_state::{Phase, Status};
use crate::supervisor::socket::Request;

static DB: Unit = holding_data(daemon("db", &[], stack::postgres::PORT));
static MIGRATE: Unit = task("migrate", &["db"]);
static APP: Unit = daemon("app", &["migrate"], stack::nginx::PORT);
static LONE: Unit = daemon("lone", &[], stack::pgbouncer::PORT);

#[test]
fn an_app_that_stops_answering_is_restarted_after_three_probes_in_a_row_and_says_why() {
    let mut bench = Bench::new(vec![&LONE]);
    bench.start().unwrap();
    bench.fake.asked();
    bench.wait(LIVENESS_PERIOD * 5).unwrap();
    assert!(
        bench.fake.asked().is_empty(),
        "an answering app is left alone"
    );

    bench.fake.silence("lone");
    bench.fake.stubborn("lone");
    bench.wait(LIVENESS_PERIOD * 2).unwrap();
    assert_eq!(
        bench.status("lone"),
        Status::Ready,
        "two misses are not three"
    );
    assert!(bench.fake.asked().is_empty());
    bench.wait(LIVENESS_PERIOD).unwrap();
    assert_eq!(bench.fake.asked(), ["SIGTERM lone"]);
    assert_eq!(bench.status("lone"), Status::Restarting);
    let why = "lone: did not answer 3 liveness probes in a row: lone does not answer";
    assert_eq!(bench.slot("lone").last_restart.as_deref(), Some(why));
    assert_eq!(bench.slot("lone").restarts, 1);
    // It has no clients' work to finish: killed after a second, not ten.
    bench.wait(Duration::from_secs(1)).unwrap();
    assert_eq!(bench.fake.asked(), ["SIGKILL lone"]);
    bench.fake.answer("lone");
    bench.wait(Duration::from_millis(500)).unwrap();
    assert_eq!(bench.fake.asked(), ["start lone"]);
    bench.settle().unwrap();
    assert_eq!(bench.status("lone"), Status::Ready);
    let state = crate::supervisor::run_state::RunState::read(&bench.dir).unwrap();
    assert_eq!(
        state.units[0].last_restart.as_deref(),
        Some(why),
        "status shows it"
    );
}

#[test]
fn a_database_that_stops_answering_is_reported_and_never_restarted() {
    let mut bench = Bench::new(vec![&DB, &MIGRATE, &APP]);
    bench.start().unwrap();
    bench.fake.asked();
    bench.fake.silence("db");
    bench.wait(LIVENESS_PERIOD * 3).unwrap();
    let note = bench
        .slot("db")
        .message
        .clone()
        .expect("the supervisor says so");
    assert!(
        note.starts_with(
            "did not answer 3 liveness probes in a row (db does not answer); not restarted"
        ) && note.ends_with("`cargo xtask restart db` restarts it"),
        "{note}"
    );
    // However long it hangs, neither it nor the app that needs it is restarted.
    bench.wait(Duration::from_secs(600)).unwrap();
    assert!(bench.fake.asked().is_empty(), "{:?}", bench.fake.asked());
    assert_eq!(bench.slot("app").restarts, 0);
    bench.fake.answer("db");
    bench.wait(LIVENESS_PERIOD).unwrap();
    assert_eq!(bench.slot("db").message, None, "it answers again");
}

#[test]
fn no_liveness_probe_runs_while_the_stack_starts() {
    let mut bench = Bench::new(vec![&LONE, &DB]);
    bench.fake.silence("db");
    bench.wait(Duration::from_secs(1)).unwrap();
    assert_eq!(bench.status("lone"), Status::Ready);
    bench.fake.silence("lone");
    bench.wait(LIVENESS_PERIOD * 10).unwrap();
    assert_eq!(bench.fake.asked(), ["start lone", "start db"]);
    assert_eq!(bench.sup.phase, Phase::Starting);
}

#[test]
fn a_port_taken_before_a_restart_is_named_and_retried_with_a_growing_delay() {
    let mut bench = Bench::new(vec![&LONE]);
    bench.start().unwrap();
    bench.fake.asked();
    let port = bench.sup.slots[0].port.unwrap();
    bench.fake.exit("lone", "signal: 9 (SIGKILL)");
    bench.fake.take_port(port, true);
    bench.settle().unwrap();
    let taken = format!(
        "port {port} for lone is already in use (pid 4711, thief); stop it or set PGBOUNCER_PORT"
    );
    for delay in [500, 1000, 2000, 4000] {
        bench.wait(Duration::from_millis(delay)).unwrap();
        assert!(bench.fake.asked().is_empty(), "spawned on a taken port");
        assert_eq!(bench.status("lone"), Status::Restarting);
        assert_eq!(bench.slot("lone").message.as_deref(), Some(taken.as_str()));
    }
    bench.fake.take_port(port, false);
    bench.wait(Duration::from_millis(8000)).unwrap();
    assert_eq!(bench.fake.asked(), ["start lone"]);
    assert_eq!(bench.status("lone"), Status::Ready);
}

#[test]
fn stopping_a_dependency_while_its_dependents_start_holds_them_and_the_start_ends() {
    let mut bench = Bench::new(vec![&DB, &MIGRATE, &APP, &LONE]);
    bench.fake.silence("db");
    bench.settle().unwrap();
    let mut stop = bench.call(Request::Stop {
        services: names(&["db"]),
    });
    bench.settle().unwrap();
    assert_eq!(stop.done(), Some(Ok(())));
    assert_eq!(
        stop.lines(),
        [
            "db: stopping",
            "migrate: not started, since db is stopped",
            "app: not started, since db is stopped"
        ]
    );
    assert_eq!(bench.sup.phase, Phase::Running, "the start is over");
    for name in ["db", "migrate", "app"] {
        assert_eq!(bench.status(name), Status::Stopped, "{name}");
    }
    assert_eq!(bench.status("lone"), Status::Ready);
    // The last command wins: `start app` brings back what it needs.
    bench.fake.answer("db");
    let mut start = bench.call(Request::Start {
        services: names(&["app"]),
    });
    bench.wait(Duration::from_millis(100)).unwrap();
    assert_eq!(start.done(), Some(Ok(())));
    assert!(bench.statuses().iter().all(|(_, s)| *s == Status::Ready));
}

#[test]
fn a_restart_during_the_start_and_a_stop_signal_during_a_restart_end_as_asked() {
    let mut bench = Bench::new(vec![&DB, &MIGRATE, &APP]);
    bench.fake.silence("db");
    bench.settle().unwrap();
    let mut restart = bench.call(Request::Restart {
        services: names(&["db"]),
    });
    bench.fake.answer("db");
    bench.wait(Duration::from_millis(100)).unwrap();
    assert_eq!(restart.done(), Some(Ok(())));
    assert_eq!(bench.sup.phase, Phase::Running);
    assert!(bench.statuses().iter().all(|(_, s)| *s == Status::Ready));

    bench.fake.silence("app");
    let mut restart = bench.call(Request::Restart {
        services: names(&["app"]),
    });
    bench.sup.turn(Some(Event::Signal), bench.now).unwrap();
    assert!(bench.sup.signalled);
    bench.sup.stop_all();
    assert_eq!(
        restart.done(),
        Some(Err("the stack is stopping (`cargo xtask down`)".to_owned()))
    );
    assert!(!bench.fake.runs("db") && !bench.fake.runs("app"));
    assert_eq!(bench.sup.phase, Phase::Stopped);
}
