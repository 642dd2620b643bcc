//! The control socket's requests: restart, stop, start, a second `up` (and `watch`'s), their
//! callers waiting until the units are ready or stopped.

use std::time::Duration;

use super::{Bench, daemon, names};
use crate::stack::{self, Unit};
use crate::supervisor::run_state::Status;
use crate::supervisor::socket::{Recreate, Request, Start};

static DB: Unit = daemon("db", &[], stack::postgres::PORT);
static APP: Unit = daemon("app", &["db"], stack::nginx::PORT);
static OTHER: Unit = daemon("other", &[], stack::pgbouncer::PORT);

fn pid(bench: &Bench, name: &str) -> u32 {
    bench.slot(name).process().expect("it runs").pid
}

#[test]
fn restart_restarts_only_the_named_service_and_answers_once_it_is_ready() {
    let mut bench = Bench::new(vec![&DB, &APP, &OTHER]);
    bench.start().unwrap();
    bench.fake.asked();
    bench.fake.silence("app");
    let mut restart = bench.call(Request::Restart {
        services: names(&["app"]),
    });
    assert_eq!(bench.fake.asked(), ["SIGTERM app", "start app"]);
    assert_eq!(restart.lines(), ["app: stopping"]);
    assert_eq!(restart.done(), None, "answered before it is ready");
    bench.fake.answer("app");
    bench.wait(Duration::from_millis(20)).unwrap();
    assert_eq!(restart.done(), Some(Ok(())));

    // A dependency restarts alone: its dependents keep running.
    let app = pid(&bench, "app");
    let mut restart = bench.call(Request::Restart {
        services: names(&["db"]),
    });
    assert_eq!(restart.done(), Some(Ok(())));
    assert_eq!(bench.fake.asked(), ["SIGTERM db", "start db"]);
    assert_eq!(pid(&bench, "app"), app);

    // One that does not come back tells its caller why, and is restarted after its delay.
    bench.fake.silence("db");
    let mut restart = bench.call(Request::Restart {
        services: names(&["db"]),
    });
    bench.fake.exit("db", "exit status: 1");
    bench.settle().unwrap();
    assert_eq!(
        restart.done(),
        Some(Err("db exited (exit status: 1)".to_owned()))
    );
    assert_eq!(bench.status("db"), Status::Restarting);
    // Restarting it by hand skips the delay.
    bench.fake.asked();
    let mut restart = bench.call(Request::Restart {
        services: names(&["db"]),
    });
    assert_eq!(bench.fake.asked(), ["start db"]);
    bench.fake.answer("db");
    bench.wait(Duration::from_millis(20)).unwrap();
    assert_eq!(restart.done(), Some(Ok(())));
    assert_eq!(bench.slot("db").failures, 0);

    let mut unknown = bench.call(Request::Restart {
        services: names(&["nope"]),
    });
    assert_eq!(
        unknown.done(),
        Some(Err(
            "this stack has no service \"nope\"; it has db, app, other".to_owned()
        ))
    );
}

#[test]
fn a_restart_waits_for_a_daemon_that_ignores_its_stop_signal_then_kills_it() {
    let mut bench = Bench::new(vec![&DB]);
    bench.start().unwrap();
    bench.fake.asked();
    bench.fake.stubborn("db");
    let mut restart = bench.call(Request::Restart {
        services: names(&["db"]),
    });
    bench.wait(Duration::from_millis(9_999)).unwrap();
    assert_eq!(bench.fake.asked(), ["SIGTERM db"]);
    assert_eq!(bench.status("db"), Status::Stopping);
    assert_eq!(restart.done(), None);
    bench.wait(Duration::from_millis(1)).unwrap();
    assert_eq!(bench.fake.asked(), ["SIGKILL db", "start db"]);
    assert_eq!(restart.done(), Some(Ok(())));
}

#[test]
fn a_stopped_service_stays_stopped_until_start_which_brings_its_dependencies() {
    let mut bench = Bench::new(vec![&DB, &APP, &OTHER]);
    bench.start().unwrap();
    bench.fake.asked();
    let app = pid(&bench, "app");
    let mut stop = bench.call(Request::Stop {
        services: names(&["db"]),
    });
    assert_eq!(bench.fake.asked(), ["SIGTERM db"]);
    assert_eq!(stop.lines(), ["db: stopping"]);
    assert_eq!(stop.done(), Some(Ok(())));
    assert_eq!(bench.status("db"), Status::Stopped);
    assert_eq!(
        bench.slot("db").message.as_deref(),
        Some("stopped (`cargo xtask start db` starts it)")
    );
    // Not restarted, however long it stays stopped (longer than any restart delay); its
    // dependents are left running.
    bench.wait(Duration::from_secs(3600)).unwrap();
    assert!(bench.fake.asked().is_empty(), "something was started");
    assert_eq!(bench.status("db"), Status::Stopped);
    assert_eq!(pid(&bench, "app"), app);
    // A second stop has nothing to stop.
    let mut again = bench.call(Request::Stop {
        services: names(&["db"]),
    });
    assert!(again.lines().is_empty());
    assert_eq!(again.done(), Some(Ok(())));

    // Starting a running service starts the stopped ones it depends on.
    let mut start = bench.call(Request::Start {
        services: names(&["app"]),
    });
    assert_eq!(start.lines(), ["db: starting"]);
    assert_eq!(start.done(), Some(Ok(())));
    assert_eq!(bench.fake.asked(), ["start db"]);
    assert_eq!(pid(&bench, "app"), app);
    assert_eq!(bench.slot("db").message, None);
}

#[test]
fn a_second_up_starts_what_is_not_running_and_restarts_what_changed_with_its_dependents() {
    let mut bench = Bench::new(vec![&DB, &APP, &OTHER]);
    bench.sup.hold_all_but(&names(&["app"])).unwrap();
    bench.start().unwrap();
    assert_eq!(bench.fake.asked(), ["start db", "start app"]);
    let up = |env, recreate| Request::Up {
        services: Vec::new(),
        start: Start::Asked,
        recreate,
        env,
    };

    let mut all = bench.call(up(bench.env(&[]), Recreate::Changed));
    assert_eq!(all.lines(), ["other: starting"]);
    assert_eq!(all.done(), Some(Ok(())));
    assert_eq!(bench.fake.asked(), ["start other"]);

    let mut nothing = bench.call(up(bench.env(&[]), Recreate::Changed));
    assert_eq!(
        nothing.lines(),
        ["nothing to do: every service runs as configured"]
    );
    assert_eq!(nothing.done(), Some(Ok(())));

    // The dependency's port moves: it and its dependent (which names that port) would
    // restart; with --no-recreate they are only named.
    let moved = bench.env(&[("POSTGRES_PORT", "15432")]);
    let mut kept = bench.call(up(moved.clone(), Recreate::Never));
    assert_eq!(
        kept.lines(),
        [
            "db: not recreated (--no-recreate), though POSTGRES_PORT 5432 -> 15432",
            "app: not recreated (--no-recreate), though POSTGRES_PORT 5432 -> 15432"
        ]
    );
    assert_eq!(kept.done(), Some(Ok(())));
    assert!(bench.fake.asked().is_empty());

    let mut changed = bench.call(up(moved, Recreate::Changed));
    assert_eq!(
        changed.lines(),
        [
            "db: restarting: POSTGRES_PORT 5432 -> 15432",
            "app: restarting: POSTGRES_PORT 5432 -> 15432",
            "db: stopping",
            "app: stopping"
        ]
    );
    assert_eq!(changed.done(), Some(Ok(())));
    assert_eq!(
        bench.fake.asked(),
        ["SIGTERM db", "SIGTERM app", "start db", "start app"]
    );
    assert_eq!(bench.slot("db").port, Some(15432));
    assert_eq!(bench.status("other"), Status::Ready);
}

#[test]
fn watchs_up_restarts_changed_running_apps_and_starts_none() {
    let mut bench = Bench::new(vec![&DB, &APP, &OTHER]);
    bench.start().unwrap();
    bench.call(Request::Stop {
        services: names(&["other"]),
    });
    bench.fake.asked();
    let watch = |bench: &Bench, services: &[&str], vars: &[(&str, &str)]| Request::Up {
        services: names(services),
        start: Start::Nothing,
        recreate: Recreate::Changed,
        env: bench.env(vars),
    };
    let request = watch(&bench, &["other"], &[("PGBOUNCER_PORT", "16432")]);
    let mut stopped = bench.call(request);
    assert_eq!(
        stopped.lines(),
        ["nothing to do: every service runs as configured"]
    );
    assert_eq!(stopped.done(), Some(Ok(())));
    assert!(bench.fake.asked().is_empty());
    assert_eq!(bench.status("other"), Status::Stopped);

    let request = watch(&bench, &["app"], &[("DOCS_HOST_PORT", "18080")]);
    let mut app = bench.call(request);
    assert_eq!(app.done(), Some(Ok(())));
    assert_eq!(bench.fake.asked(), ["SIGTERM app", "start app"]);
}

#[test]
fn callers_that_ask_while_the_stack_starts_are_answered_once_it_is_ready() {
    let mut bench = Bench::new(vec![&DB, &APP]);
    bench.fake.silence("db");
    bench.settle().unwrap();
    let up = || Request::Up {
        services: Vec::new(),
        start: Start::Asked,
        recreate: Recreate::Changed,
        env: bench.env(&[]),
    };
    let (first, second) = (up(), up());
    let mut first = bench.call(first);
    let mut second = bench.call(second);
    let mut start = bench.call(Request::Start {
        services: names(&["app"]),
    });
    bench.wait(Duration::from_secs(5)).unwrap();
    assert_eq!(first.done(), None);
    assert_eq!(second.done(), None);
    assert_eq!(start.done(), None);
    bench.fake.answer("db");
    bench.wait(Duration::from_millis(20)).unwrap();
    assert_eq!(bench.status("app"), Status::Ready);
    assert_eq!(first.done(), Some(Ok(())));
    assert_eq!(second.done(), Some(Ok(())));
    assert_eq!(start.done(), Some(Ok(())));
}
