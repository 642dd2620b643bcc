//! Logins and refusals on the isolated stack that `cargo xtask test` runs (its URLs come from
//! the environment; without it these tests fail and say how to run them).

use amtp_testkit::stack_env;

fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest.split_once('@').unwrap();
    let user = userinfo.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

#[test]
fn scram_login_through_pgbouncer_works_and_a_wrong_password_fails() {
    let url = stack_env("DATABASE_URL");
    let mut client =
        postgres::Client::connect(&url, postgres::NoTls).expect("SCRAM login through PgBouncer");
    // Transaction pooling: a query runs on a server connection PgBouncer picked for us.
    let answer: i32 = client.query_one("SELECT 41 + 1", &[]).unwrap().get(0);
    assert_eq!(answer, 42);

    let err = postgres::Client::connect(&with_password(&url, "wrong"), postgres::NoTls)
        .err()
        .expect("a wrong password must be refused");
    // PgBouncer's own refusal (Postgres would say "password authentication failed").
    let message = err.as_db_error().map(|e| e.message()).unwrap_or_default();
    assert_eq!(message, "SASL authentication failed", "{err:?}");
}

#[test]
fn postgres_refuses_a_wrong_password_too() {
    let url = stack_env("DIRECT_DATABASE_URL");
    assert!(postgres::Client::connect(&url, postgres::NoTls).is_ok());
    assert!(postgres::Client::connect(&with_password(&url, "wrong"), postgres::NoTls).is_err());
}

#[test]
fn valkey_refuses_unauthenticated_commands() {
    let port = stack_env("VALKEY_PORT");
    let mut anonymous = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let err = redis::cmd("SET")
        .arg("amtp:test")
        .arg("1")
        .query::<()>(&mut anonymous)
        .unwrap_err();
    assert_eq!(err.code(), Some("NOAUTH"), "{err}");

    let mut client = redis::Client::open(stack_env("VALKEY_URL"))
        .unwrap()
        .get_connection()
        .unwrap();
    let pong: String = redis::cmd("PING").query(&mut client).unwrap();
    assert_eq!(pong, "PONG");
}
